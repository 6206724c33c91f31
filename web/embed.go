package web

import (
	"bytes"
	"embed"
	"html"
	"io/fs"
	"net/http"
	"path"
)

//go:embed static
var static embed.FS

// FS returns the player's static files, rooted at the static folder
// (index.html, ersmesh.js, whep.js, playerbase.js, fmp4.js, stats.js,
// support.js, trust.js, socketio.js, player.css).
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // "static" is a valid path by construction
	}
	return sub
}

// contentTypes pins the types of the files we ship. The mime package would
// otherwise consult the host's mime.types, which on some systems still maps
// .js to application/x-javascript.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
}

// Handler serves the static files at the root: "/" is index.html, so
// "/?room=frontdoor" opens the player. Every answer carries
// Cache-Control: no-cache, so that browsers revalidate the player after an
// upgrade instead of mixing old and new modules.
func Handler() http.Handler { return HandlerWithSession(nil) }

// sessionMeta is where index.html takes a Socket.IO session from the
// server that serves it (HandlerWithSession).
const sessionMeta = `<meta name="ersmesh-session" content="">`

// HandlerWithSession is Handler for a bridge: session, called for each
// request of the page at "/", returns the answer of a Socket.IO handshake
// made for it ("<sid>:<heartbeat>:<close>:websocket"), or "" for none.
// A page with a session opens its WebSocket at once, without a handshake
// request first (docs/media-benchmarks.md); it is never stored, since a
// session is used once.
func HandlerWithSession(session func(*http.Request) string) http.Handler {
	files := http.FileServerFS(FS())
	page, err := fs.ReadFile(FS(), "index.html")
	if err != nil || !bytes.Contains(page, []byte(sessionMeta)) {
		panic("web: index.html has no " + sessionMeta) // TestHandlerWithSession
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		// Pages on any origin may import the player module from a bridge
		// (import {Player} from 'https://bridge/ersmesh.js'); module
		// scripts load with CORS. The files are public and carry no
		// credentials, so "*" gives nothing away.
		h.Set("Access-Control-Allow-Origin", "*")
		name := r.URL.Path
		if name == "" || name[len(name)-1] == '/' {
			name += "index.html"
		}
		if ct, ok := contentTypes[path.Ext(name)]; ok {
			h.Set("Content-Type", ct)
		}
		if session != nil && r.URL.Path == "/" && r.Method == http.MethodGet {
			if s := session(r); s != "" {
				h.Set("Cache-Control", "no-store")
				w.Write(bytes.Replace(page, []byte(sessionMeta),
					[]byte(`<meta name="ersmesh-session" content="`+html.EscapeString(s)+`">`), 1))
				return
			}
		}
		files.ServeHTTP(w, r)
	})
}
