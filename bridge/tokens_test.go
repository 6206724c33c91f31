package bridge_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/internal/sioclient"
)

// from returns client options whose connections come from the loopback
// address ip, so one test can be several clients.
func from(ip string) *sioclient.Options {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &sioclient.Options{HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}}
}

// TestERSTokens: a token is single use per client address; a join without
// one, with an unknown one, or with one another client used is refused with
// a reason; the client that used it may rejoin.
func TestERSTokens(t *testing.T) {
	store := access.NewStore(true)
	store.AddToken("T1")
	base := startTuned(t, func(c *bridge.Config) { c.Access = store })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	join := func(ip, token string) []json.RawMessage {
		t.Helper()
		c, err := sioclient.Dial(ctx, base, from(ip))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ack, err := c.EmitAck(ctx, ersproto.EventJoin, ersproto.JoinArgs("demo", ersproto.Join{Token: token, StreamName: "sample", Transport: ersproto.TransportSRTP})...)
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	refused := func(ack []json.RawMessage, want string) {
		t.Helper()
		var reason string
		if len(ack) == 0 || json.Unmarshal(ack[0], &reason) != nil || !strings.Contains(reason, want) {
			t.Errorf("join ack %s, want a refusal mentioning %q", ack, want)
		}
	}
	refused(join("127.0.0.1", ""), "requires a token")
	refused(join("127.0.0.1", "guess"), "invalid token")
	for range 2 { // the first use, then a rejoin from the same address
		if ack := join("127.0.0.1", "T1"); len(ack) != 2 || string(ack[0]) != "null" || !strings.Contains(string(ack[1]), "12D3KooW") {
			t.Fatalf("join with a fresh token: %s", ack)
		}
	}
	refused(join("127.0.0.2", "T1"), "already used")

	store.AddRoom("elsewhere")
	refused(join("127.0.0.1", "T1"), "not allowed")
}
