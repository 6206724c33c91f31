package web_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/browsertest"
)

// migrationShim is the snippet docs/migrating-from-ems.md gives EvoStream
// player users, read from the document so that the page and the test cannot
// drift apart.
func migrationShim(t *testing.T) string {
	doc, err := os.ReadFile("../docs/migrating-from-ems.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	start := strings.Index(s, "<script>\n")
	end := strings.Index(s, "</script>")
	if start < 0 || end < start {
		t.Fatal("docs/migrating-from-ems.md: no <script> snippet")
	}
	return s[start+len("<script>\n") : end]
}

// evoSrtpPage plays a MediaStream the way EvoStream's player's srtp mode
// does: video.src = URL.createObjectURL(stream).
const evoSrtpPage = `<!doctype html><canvas id=c width=64 height=48></canvas><video id=v autoplay muted playsinline></video>
<script>%SHIM%</script>
<script>
const c = document.getElementById('c'), g = c.getContext('2d');
let n = 0;
setInterval(() => { g.fillStyle = 'hsl(' + (n++ * 10 % 360) + ',80%,50%)'; g.fillRect(0, 0, 64, 48); }, 40);
const stream = c.captureStream(25);
const v = document.getElementById('v');
try { v.src = URL.createObjectURL(stream); window.evoResult = 'assigned'; }
catch (e) { window.evoResult = 'threw: ' + e.message; }
</script>`

func TestEvoStreamSrtpShim(t *testing.T) {
	for _, withShim := range []bool{false, true} {
		shim := ""
		if withShim {
			shim = migrationShim(t)
		}
		page := strings.Replace(evoSrtpPage, "%SHIM%", shim, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(page))
		}))
		t.Cleanup(srv.Close)
		ctx := browsertest.New(t)
		if err := browsertest.Navigate(ctx, srv.URL); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitFor(ctx, t, 5*time.Second, `typeof window.evoResult === 'string'`)
		res, err := browsertest.Eval[string](ctx, `window.evoResult`)
		if err != nil {
			t.Fatal(err)
		}
		if !withShim {
			// The reason the shim exists: browsers removed the call.
			if !strings.HasPrefix(res, "threw") {
				t.Fatalf("without the shim createObjectURL(MediaStream) gave %q; the migration guide's premise is wrong", res)
			}
			continue
		}
		if res != "assigned" {
			t.Fatalf("with the shim: %s", res)
		}
		browsertest.WaitFor(ctx, t, 10*time.Second, `(() => { const v = document.getElementById('v'); return v.srcObject instanceof MediaStream && v.currentTime > 0.3 && v.videoWidth === 64; })()`)
	}
}
