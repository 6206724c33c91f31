package admin_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/bridge/admin"
	"github.com/ersmesh/ersmesh/internal/browsertest"
)

// TestWebPageCannotAdminister plays a hostile web page the bridge's
// operator visits in a real Chromium: from another origin it sends
// no-cors GETs and POSTs to the admin endpoint on loopback, and through a
// rebound host name (evil.test resolving to 127.0.0.1) it tries to read
// the token list. The endpoint must refuse all of it.
func TestWebPageCannotAdminister(t *testing.T) {
	store := access.NewStore(true)
	store.AddToken("keep-me")
	var reached atomic.Int32
	h := admin.Handler(store, "v1", nil, nil)
	adm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(adm.Close)

	// The attacker's page, on another loopback address: another origin,
	// another site.
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf(`<!doctype html><title>cats</title><link rel="icon" href="data:,">
<script type="module">
const admin = %q;
const sent = [];
const attempts = [
  ['/?c=addToken&i=evil-get', {mode: 'no-cors'}],
  ['/?c=addToken&i=evil-post', {mode: 'no-cors', method: 'POST'}],
  ['/?c=addRoom&i=evil-room', {mode: 'no-cors', method: 'POST'}],
  ['/?c=delToken&i=keep-me', {mode: 'no-cors', method: 'POST'}],
];
for (const [q, init] of attempts) {
  try { await fetch(admin + q, init); sent.push('sent'); } catch (e) { sent.push(String(e)); }
}
await new Promise((ok) => { const i = new Image(); i.onload = i.onerror = ok; i.src = admin + '/?c=addRoom&i=evil-img'; });
window.sent = sent;
</script>`, adm.URL)
	site := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}), ReadHeaderTimeout: 5 * time.Second}
	go site.Serve(l)
	t.Cleanup(func() { site.Close() })

	b := browsertest.New(t, browsertest.Flag("host-resolver-rules", "MAP evil.test 127.0.0.1"))
	if err := browsertest.Navigate(b, "http://"+l.Addr().String()+"/"); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitFor(b, t, 10*time.Second, `Array.isArray(window.sent) && window.sent.length === 4`)
	if n := reached.Load(); n < 5 {
		t.Fatalf("only %d of the page's 5 requests reached the endpoint: the test proves nothing", n)
	}
	if toks := store.Tokens(); len(toks) != 1 || toks[0].Token != "keep-me" {
		t.Errorf("a web page changed the tokens: %+v", toks)
	}
	if rooms := store.Rooms(); len(rooms) != 0 {
		t.Errorf("a web page allowed rooms: %v", rooms)
	}

	// DNS rebinding: the page's own name now points at loopback, so the
	// browser deems the endpoint same-origin and would let it read.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(adm.URL, "http://"))
	before := reached.Load()
	if err := browsertest.Navigate(b, "http://evil.test:"+port+"/?c=listTokens"); err != nil {
		t.Fatal(err)
	}
	body, err := browsertest.Eval[string](b, `document.body.innerText`)
	if err != nil {
		t.Fatal(err)
	}
	if reached.Load() == before {
		t.Fatal("the rebound request never reached the endpoint")
	}
	if strings.Contains(body, "keep-me") || !strings.Contains(body, "FAIL") {
		t.Errorf("a rebinding page read the admin endpoint: %s", body)
	}
}
