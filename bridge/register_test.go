package bridge_test

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/demo"
	"github.com/ersmesh/ersmesh/room"
)

// TestRegisterRefusesBadRecords: the bridge takes a directly handed record
// only if a DHT node would: garbage, a record signed by a key that does
// not own the room, and oversized bodies are refused with the reason.
func TestRegisterRefusesBadRecords(t *testing.T) {
	d := startDemo(t, demo.Config{})
	post := func(body []byte) (int, string) {
		t.Helper()
		resp, err := http.Post(d.Bridge+bridge.RegisterPath, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	good, err := d.Device().RoomRecord("demo")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post(good); code != http.StatusNoContent {
		t.Errorf("the device's own record: %d %s", code, body)
	}
	// A squatter's record for a room owned by someone else.
	owner, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	ownerID, _ := peer.IDFromPrivateKey(owner)
	squatter, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	rec := &room.Record{Room: "cam@" + ownerID.String(), Expires: time.Now().Add(time.Minute), Seq: 1}
	if err := rec.Sign(squatter); err != nil {
		t.Fatal(err)
	}
	forged, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		body []byte
		want string
	}{
		"garbage":   {[]byte("not a record"), "record refused"},
		"squatter":  {forged, "record refused"},
		"oversized": {bytes.Repeat([]byte{1}, 9<<10), "at most"},
	} {
		if code, body := post(c.body); code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %q, want 400 mentioning %q", name, code, body, c.want)
		}
	}
	resp, err := http.Get(d.Bridge + bridge.RegisterPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()
}
