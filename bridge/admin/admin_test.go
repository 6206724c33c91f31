package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/ersmesh/ersmesh/bridge/access"
)

func get(t *testing.T, h http.Handler, remote, q string) (int, Reply) {
	t.Helper()
	return send(t, h, http.MethodGet, remote, q)
}

func post(t *testing.T, h http.Handler, remote, q string) (int, Reply) {
	t.Helper()
	return send(t, h, http.MethodPost, remote, q)
}

func send(t *testing.T, h http.Handler, method, remote, q string) (int, Reply) {
	t.Helper()
	r := httptest.NewRequest(method, "/?"+q, nil)
	r.RemoteAddr = remote
	r.Host = "127.0.0.1:3030"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var rep Reply
	if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil {
		t.Fatalf("%s: not JSON: %q", q, w.Body.String())
	}
	return w.Code, rep
}

func TestCommands(t *testing.T) {
	s := access.NewStore(true)
	h := Handler(s, "v1", nil, nil)
	const local = "127.0.0.1:5000"
	if c, rep := get(t, h, "192.0.2.1:5", "c=version"); c != 403 || rep.Status != "FAIL" {
		t.Errorf("remote client: %d %+v", c, rep)
	}
	if c, rep := get(t, h, local, "c=version"); c != 200 || rep.Status != "SUCCESS" {
		t.Errorf("version: %d %+v", c, rep)
	}
	if _, rep := post(t, h, local, "c=addToken&i=abc"); rep.Status != "SUCCESS" {
		t.Errorf("addToken: %+v", rep)
	}
	if _, rep := post(t, h, local, "c=addToken"); rep.Status != "SUCCESS" {
		t.Errorf("addToken without id: %+v", rep)
	}
	if _, rep := get(t, h, local, "c=listTokens"); rep.Status != "SUCCESS" || len(rep.Data.([]any)) != 2 {
		t.Errorf("listTokens: %+v", rep)
	}
	if err := s.Check("r", "abc", "x"); err != nil {
		t.Errorf("a token added over HTTP does not work: %v", err)
	}
	if _, rep := post(t, h, local, "c=delToken&i=abc"); rep.Status != "SUCCESS" {
		t.Errorf("delToken: %+v", rep)
	}
	if c, _ := post(t, h, local, "c=delToken&i=abc"); c != 404 {
		t.Errorf("delToken twice: %d", c)
	}
	post(t, h, local, "c=addRoom&i=frontdoor")
	if _, rep := get(t, h, local, "c=listRooms"); rep.Status != "SUCCESS" {
		t.Errorf("listRooms: %+v", rep)
	} else if rooms := rep.Data.(map[string]any)["allowedrooms"].([]any); len(rooms) != 1 || rooms[0] != "frontdoor" {
		t.Errorf("listRooms data: %+v", rep.Data)
	}
	if _, rep := post(t, h, local, "c=delRoom&i=frontdoor"); rep.Status != "SUCCESS" {
		t.Errorf("delRoom: %+v", rep)
	}
	for _, q := range []string{"c=launch", "", "c=addEMSToken&i=x", "c=addRoom"} {
		if c, rep := post(t, h, local, q); c < 400 || rep.Status != "FAIL" || rep.Description == "" {
			t.Errorf("%q: %d %+v, want a FAIL with a reason", q, c, rep)
		}
	}
}

func TestAllowedPrefixes(t *testing.T) {
	h := Handler(access.NewStore(false), "v1", []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, nil)
	if c, _ := get(t, h, "10.1.2.3:1", "c=version"); c != 200 {
		t.Errorf("allowed prefix: %d", c)
	}
	if c, _ := get(t, h, "127.0.0.1:1", "c=version"); c != 403 {
		t.Errorf("loopback when not listed: %d", c)
	}
}

// TestChangesNeedPOST: a GET, which any page can make a browser send (an
// <img>, a link), reads but changes nothing.
func TestChangesNeedPOST(t *testing.T) {
	s := access.NewStore(true)
	h := Handler(s, "v1", nil, nil)
	for _, q := range []string{"c=addToken&i=x", "c=addRoom&i=x", "c=delToken&i=keep", "c=delRoom&i=keep"} {
		s.AddToken("keep")
		s.AddRoom("keep")
		if c, rep := get(t, h, "127.0.0.1:1", q); c != http.StatusMethodNotAllowed || !strings.Contains(rep.Description, "POST") {
			t.Errorf("GET %s: %d %+v, want 405 naming POST", q, c, rep)
		}
		if len(s.Tokens()) != 1 || len(s.Rooms()) != 1 {
			t.Fatalf("GET %s changed the store: tokens %v rooms %v", q, s.Tokens(), s.Rooms())
		}
	}
	for _, q := range []string{"c=version", "c=listTokens", "c=listRooms"} {
		if c, rep := get(t, h, "127.0.0.1:1", q); c != 200 || rep.Status != "SUCCESS" {
			t.Errorf("GET %s (a read): %d %+v", q, c, rep)
		}
	}
}
