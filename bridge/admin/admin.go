package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/internal/localapi"
)

// DefaultAddr is ERS's admin port, on loopback.
const DefaultAddr = "127.0.0.1:3030"

// Reply is every command's answer.
type Reply struct {
	Status      string `json:"status"`
	Description string `json:"description"`
	Data        any    `json:"data,omitempty"`
}

// Handler answers admin commands for store. allowed lists the client
// prefixes it serves (nil: loopback only).
func Handler(store *access.Store, version string, allowed []netip.Prefix, log *slog.Logger) http.Handler {
	if allowed == nil {
		allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := limit.Addr(r)
		if !ok || !contains(allowed, a) {
			log.Warn("admin: refused a client not in the allowed list", "addr", r.RemoteAddr)
			write(w, http.StatusForbidden, Reply{Status: "FAIL", Description: "your address may not administer this bridge"})
			return
		}
		if why := localapi.FromWebPage(r); why != "" {
			log.Warn("admin: refused a request from a web page", "addr", r.RemoteAddr, "reason", why,
				"origin", truncate(r.Header.Get("Origin"), 100), "host", truncate(r.Host, 100))
			write(w, http.StatusForbidden, Reply{Status: "FAIL", Description: why})
			return
		}
		q := r.URL.Query()
		c, id := q.Get("c"), q.Get("i")
		switch {
		case r.Method == http.MethodPost:
		case r.Method == http.MethodGet && readOnly(c):
			// ERS administrators' scripts read with GET; reads change
			// nothing, and a page cannot read the answer (no CORS, and the
			// Host check stops rebinding).
		case r.Method == http.MethodGet:
			w.Header().Set("Allow", "POST")
			write(w, http.StatusMethodNotAllowed, Reply{Status: "FAIL", Description: "commands that change the bridge need POST: curl -X POST '127.0.0.1:3030/?c=" + truncate(c, 40) + "&i=...'"})
			return
		default:
			w.Header().Set("Allow", "GET, POST")
			write(w, http.StatusMethodNotAllowed, Reply{Status: "FAIL", Description: "admin commands are POST /?c=<command>&i=<id> (GET for version and list commands)"})
			return
		}
		code, rep := run(store, version, c, id)
		if rep.Status == "SUCCESS" && c != "version" && !strings.HasPrefix(c, "list") {
			log.Info("admin command", "c", c, "i", id, "addr", r.RemoteAddr)
		}
		write(w, code, rep)
	})
}

// readOnly reports whether command c changes nothing (and so may be
// sent with GET, as ERS took every command).
func readOnly(c string) bool {
	switch c {
	case "version", "listTokens", "listRooms", "listEMSToken", "":
		return true
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func run(store *access.Store, version, c, id string) (int, Reply) {
	ok := func(desc string, data any) (int, Reply) {
		return http.StatusOK, Reply{Status: "SUCCESS", Description: desc, Data: data}
	}
	fail := func(code int, desc string) (int, Reply) { return code, Reply{Status: "FAIL", Description: desc} }
	switch c {
	case "version":
		return ok("ersmesh bridge", map[string]any{"version": version, "tokensEnabled": store.TokensRequired()})
	case "addToken":
		t, err := store.AddToken(id)
		if err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
		return ok("token added", t)
	case "delToken":
		if id == "" {
			return fail(http.StatusBadRequest, "delToken needs i=<token>")
		}
		if !store.DelToken(id) {
			return fail(http.StatusNotFound, "no such token")
		}
		return ok("token deleted", map[string]string{"token": id})
	case "listTokens":
		return ok("tokens", store.Tokens())
	case "addRoom":
		if err := store.AddRoom(id); err != nil {
			return fail(http.StatusBadRequest, err.Error())
		}
		return ok("room allowed", map[string]string{"room": id})
	case "delRoom":
		if !store.DelRoom(id) {
			return fail(http.StatusNotFound, "no such room in the allowed list")
		}
		return ok("room removed", map[string]string{"room": id})
	case "listRooms":
		return ok("allowed rooms (empty: any room)", map[string]any{"allowedrooms": store.Rooms()})
	case "addEMSToken", "listEMSToken", "delEMSToken":
		return fail(http.StatusNotImplemented, "EMS tokens have no use here: devices reach bridges through the mesh; protect a room with an owned room name or a device-side room secret")
	case "":
		return fail(http.StatusBadRequest, "no command: use /?c=<command>&i=<id>")
	}
	return fail(http.StatusBadRequest, "unknown command "+truncate(c, 40))
}

func write(w http.ResponseWriter, code int, rep Reply) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(rep)
}
