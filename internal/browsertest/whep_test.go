package browsertest

import (
	"net/http/httptest"
	"testing"

	"github.com/ersmesh/ersmesh/web"
)

// TestWHEPHelpers checks the WHEP player's parsing of the bridge's Link
// headers (RFC 9725 section 4.6) and its RFC 8840 fragments.
func TestWHEPHelpers(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	ctx := New(t)
	if err := Navigate(ctx, srv.URL+"/whep.js"); err != nil {
		t.Fatal(err)
	}
	got, err := Eval[string](ctx, `(async () => {
		const m = await import(new URL('/whep.js', location.href));
		const links = '<stun:a:3478>; rel="ice-server", ' +
			'<turn:b:3478?transport=udp>; rel="ice-server"; username="u,\\"1"; credential="p;w"; credential-type="password", ' +
			'<https://example.org/>; rel="next"';
		return JSON.stringify({
			ice: m.iceServersFromLinks(links),
			none: m.iceServersFromLinks(null),
			frag: m.sdpFragment('uf', 'pw', [
				{ candidate: 'candidate:1 1 udp 1 10.0.0.1 9 typ host', sdpMid: '0' },
				{ candidate: 'candidate:2 1 udp 1 10.0.0.2 9 typ host', sdpMid: '1' },
			], true),
		});
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ice":[{"urls":"stun:a:3478"},{"urls":"turn:b:3478?transport=udp","username":"u,\"1","credential":"p;w"}],"none":[],` +
		`"frag":"a=ice-ufrag:uf\r\na=ice-pwd:pw\r\n` +
		`m=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\na=end-of-candidates\r\n` +
		`m=audio 9 RTP/AVP 0\r\na=mid:1\r\na=candidate:2 1 udp 1 10.0.0.2 9 typ host\r\na=end-of-candidates\r\n"}`
	if got != want {
		t.Errorf("helpers:\n got %s\nwant %s", got, want)
	}
}
