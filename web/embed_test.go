package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()

	for _, tc := range []struct {
		path, status, ctype, contains string
	}{
		{"/", "200 OK", "text/html; charset=utf-8", `<video id="video" autoplay muted playsinline>`},
		{"/?room=frontdoor&stream=sample", "200 OK", "text/html; charset=utf-8", `import { Player } from './ersmesh.js'`},
		{"/ersmesh.js", "200 OK", "text/javascript; charset=utf-8", "export class Player extends PlayerBase"},
		{"/socketio.js", "200 OK", "text/javascript; charset=utf-8", "export class Socket"},
		{"/fmp4.js", "200 OK", "text/javascript; charset=utf-8", "export class Demuxer"},
		{"/whep.js", "200 OK", "text/javascript; charset=utf-8", "export class WHEPPlayer extends PlayerBase"},
		{"/playerbase.js", "200 OK", "text/javascript; charset=utf-8", "export class PlayerBase extends EventTarget"},
		{"/stats.js", "200 OK", "text/javascript; charset=utf-8", "export class StatsSampler"},
		{"/player.css", "200 OK", "text/css; charset=utf-8", "video"},
		{"/nope.js", "404 Not Found", "text/plain; charset=utf-8", ""},
	} {
		res, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != tc.status {
			t.Errorf("GET %s: status %q, want %q", tc.path, res.Status, tc.status)
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if res.StatusCode == http.StatusOK {
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("GET %s: Cache-Control %q, want no-cache", tc.path, got)
			}
			// Pages on other origins import the module.
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Errorf("GET %s: Access-Control-Allow-Origin %q, want *", tc.path, got)
			}
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
	}

	res, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", res.StatusCode)
	}
}

func TestFS(t *testing.T) {
	for _, name := range []string{"index.html", "ersmesh.js", "socketio.js", "whep.js", "playerbase.js", "stats.js", "support.js", "player.css"} {
		if _, err := fs.Stat(FS(), name); err != nil {
			t.Errorf("FS lacks %s: %v", name, err)
		}
	}
}

// TestEveryModulePreloaded: index.html names every module the player
// imports, directly or not, in a modulepreload link, so that the browser
// fetches them all at once instead of one import level per round trip.
func TestEveryModulePreloaded(t *testing.T) {
	page, err := fs.ReadFile(static, "static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	importRE := regexp.MustCompile(`(?m)^import .* from '\./([a-z0-9]+\.js)';`)
	seen := map[string]bool{}
	queue := []string{}
	for _, m := range importRE.FindAllStringSubmatch(string(page), -1) {
		queue = append(queue, m[1])
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		src, err := fs.ReadFile(static, "static/"+name)
		if err != nil {
			t.Fatalf("%s is imported but not served: %v", name, err)
		}
		for _, m := range importRE.FindAllStringSubmatch(string(src), -1) {
			queue = append(queue, m[1])
		}
	}
	if len(seen) < 5 {
		t.Fatalf("found only %d modules (%v): the import pattern no longer matches the sources", len(seen), seen)
	}
	for name := range seen {
		// Each preload carries its integrity (sri.go, TestImportMapIntegrity).
		if !strings.Contains(string(page), `<link rel="modulepreload" href="`+name+`" integrity="`) {
			t.Errorf("index.html does not preload %s, which the player imports", name)
		}
	}
}
