package web_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/web"
)

// TestWHEPHelpers checks the WHEP player's parsing of the bridge's Link
// headers (RFC 9725 section 4.6) and its RFC 8840 fragments.
func TestWHEPHelpers(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, srv.URL+"/whep.js"); err != nil {
		t.Fatal(err)
	}
	got, err := browsertest.Eval[string](ctx, `(async () => {
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
			keyed: m.withResumeKey('v=0\r\ns=-\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n', 'KEY='),
			restarted: m.restartAnswer('v=0\r\nm=video 9 X 96\r\na=mid:0\r\na=ice-ufrag:old\r\na=ice-pwd:oldpw\r\na=candidate:9 1 udp 1 10.0.0.9 9 typ host\r\na=end-of-candidates\r\nm=audio 9 X 111\r\na=mid:1\r\na=ice-ufrag:old\r\na=ice-pwd:oldpw\r\n',
				'a=ice-ufrag:new\r\na=ice-pwd:newpw\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 7 typ host\r\na=end-of-candidates\r\n'),
		});
	})()`)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ice":[{"urls":"stun:a:3478"},{"urls":"turn:b:3478?transport=udp","username":"u,\"1","credential":"p;w"}],"none":[],` +
		`"frag":"a=ice-ufrag:uf\r\na=ice-pwd:pw\r\n` +
		`m=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 9 typ host\r\na=end-of-candidates\r\n` +
		`m=audio 9 RTP/AVP 0\r\na=mid:1\r\na=candidate:2 1 udp 1 10.0.0.2 9 typ host\r\na=end-of-candidates\r\n",` +
		`"keyed":"v=0\r\ns=-\r\na=ersmesh-resume-key:KEY=\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n",` +
		`"restarted":"v=0\r\nm=video 9 X 96\r\na=mid:0\r\na=candidate:1 1 udp 1 10.0.0.1 7 typ host\r\na=ice-ufrag:new\r\na=ice-pwd:newpw\r\n` +
		`m=audio 9 X 111\r\na=mid:1\r\na=ice-ufrag:new\r\na=ice-pwd:newpw\r\n"}`
	if got != want {
		t.Errorf("helpers:\n got %s\nwant %s", got, want)
	}
}

// TestWHEPStageTimeline checks that the WHEP player keeps the stage timeline
// of PlayerBase, which the page shows: a bridge that knows no device for the
// room answers 404, so the player goes from connecting to waiting (reason
// no-device), and its retry starts a new timeline.
func TestWHEPStageTimeline(t *testing.T) {
	posts := make(chan struct{}, 16)
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("POST /whep/{room}/{stream}", func(w http.ResponseWriter, r *http.Request) {
		select {
		case posts <- struct{}{}:
		default:
		}
		http.Error(w, "no device serves room "+r.PathValue("room"), http.StatusNotFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx := browsertest.New(t)
	if err := browsertest.Navigate(ctx, srv.URL+"/?room=x&protocol=whep"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(ctx, t, 10*time.Second, `document.body.dataset.stage === 'waiting' && document.body.dataset.reason === 'no-device'`)
	got, err := browsertest.Eval[string](ctx, `JSON.stringify({
		player: window.ersPlayer.timeline.map((e) => [e.stage, e.ms === null ? 'now' : typeof e.ms]),
		page: [...document.querySelectorAll('#timeline li')].map((li) => li.dataset.stage),
	})`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"player":[["connecting","number"],["waiting","now"]],"page":["connecting","waiting"]}`; got != want {
		t.Errorf("timeline %s, want %s", got, want)
	}
	// The retry (after a second) is a new attempt: a new timeline that
	// starts with connecting again.
	browsertest.WaitFor(ctx, t, 10*time.Second, `window.ersPlayer.timeline.length >= 1 && window.ersPlayer.timeline[0].stage === 'connecting' &&
		window.ersPlayer.timeline[0].start === 0 && window.ersPlayer._failures >= 2`)
	if n := len(posts); n < 2 {
		t.Errorf("%d POSTs, want a retry", n)
	}
}
