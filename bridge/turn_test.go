package bridge

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/internal/ersviewer"
	"github.com/ersmesh/ersmesh/internal/sioclient"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/turnserver"
)

// fixedResolver resolves every room to one peer.
type fixedResolver struct{ info peer.AddrInfo }

func (r fixedResolver) Resolve(context.Context, string) (peer.AddrInfo, error) { return r.info, nil }
func (fixedResolver) Forget(string)                                            {}

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestTURNCredentialsOnlyWithAcceptedJoin plays a client that wants the
// bridge's TURN server as an open relay: it opens sockets and never joins,
// joins without the token the bridge requires, and joins a room whose
// device refuses it. None of that yields credentials. A join the device
// accepts does, short-lived, minted for that viewer, the same on both
// ends, and before the device's offer.
func TestTURNCredentialsOnlyWithAcceptedJoin(t *testing.T) {
	const secret = "fleet-secret"
	urls := []string{"turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"}

	// A device that accepts joins of room "open" and refuses the others,
	// telling the test every join it got.
	dev := newHost(t)
	joins := make(chan *signalwire.Message, 8)
	dev.SetStreamHandler(signalwire.ProtocolID, func(s network.Stream) {
		c := signalwire.NewConn(s)
		m, err := c.Recv(5 * time.Second)
		if err != nil {
			s.Reset()
			return
		}
		joins <- m
		if m.Room != "open" {
			c.Send(&signalwire.Message{Kind: signalwire.KindReject, Reason: "test device serves nobody here"})
			c.Close()
			return
		}
		c.Send(&signalwire.Message{Kind: signalwire.KindAccept})
		c.Recv(5 * time.Second) // until the viewer leaves
		c.Close()
	})
	store := access.NewStore(true)
	store.AddToken("T1")
	b, err := New(Config{
		Host:        newHost(t),
		Resolver:    fixedResolver{peer.AddrInfo{ID: dev.ID(), Addrs: dev.Addrs()}},
		STUNServers: []string{"stun:stun.example.org:3478"},
		TURN:        &turnserver.Issuer{Secret: secret, URLs: urls},
		Access:      store,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	defer func() {
		b.Close()
		if err := <-served; err != nil && err != http.ErrServerClosed {
			t.Error(err)
		}
	}()
	base := "http://" + l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// turn reads the next turnservers event, or nil if none comes soon.
	turn := func(c *sioclient.Client, wait time.Duration) []ersviewer.ICEServer {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, wait)
		defer wcancel()
		ev, err := c.NextEvent(wctx, "turnservers")
		if err != nil {
			return nil
		}
		var list []ersviewer.ICEServer
		if len(ev.Args) > 0 {
			json.Unmarshal(ev.Args[0], &list)
		}
		if list == nil {
			list = []ersviewer.ICEServer{}
		}
		return list
	}
	c, err := sioclient.Dial(ctx, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := turn(c, 5*time.Second); got == nil || len(got) != 0 {
		t.Fatalf("a socket that has not joined got TURN servers %+v, want an empty turnservers", got)
	}
	// No token: refused by the bridge; the device hears nothing.
	if ack, err := c.EmitAck(ctx, "join", "open", map[string]string{"streamName": "s"}); err != nil || !strings.Contains(string(ack[0]), "requires a token") {
		t.Fatalf("join without a token: %s %v", ack, err)
	}
	if got := turn(c, 300*time.Millisecond); got != nil {
		t.Fatalf("a join refused by the bridge got TURN servers %+v", got)
	}
	// The device refuses: it got credentials (it may relay), the
	// browser did not.
	if ack, err := c.EmitAck(ctx, "join", "closed", map[string]string{"streamName": "s", "token": "T1"}); err != nil || !strings.Contains(string(ack[0]), "serves nobody") {
		t.Fatalf("join the device refuses: %s %v", ack, err)
	}
	<-joins
	if got := turn(c, 300*time.Millisecond); got != nil {
		t.Fatalf("a join the device refused got TURN servers %+v", got)
	}

	// Accepted: the credentials come before the ack, as the player needs.
	ack, err := c.EmitAck(ctx, "join", "open", map[string]string{"streamName": "s", "token": "T1"})
	if err != nil || string(ack[0]) != "null" {
		t.Fatalf("accepted join: %s %v", ack, err)
	}
	join := <-joins
	got := turn(c, time.Second)
	if len(got) != 1 {
		t.Fatalf("accepted join: TURN servers %+v, want one", got)
	}
	tu := got[0]
	if strings.Join(tu.URLs, " ") != strings.Join(urls, " ") {
		t.Errorf("turn URLs %q, want %q", tu.URLs, urls)
	}
	exp, id, err := turnserver.ParseUsername(tu.Username)
	if err != nil || time.Until(exp) > turnserver.DefaultCredentialTTL || time.Until(exp) < turnserver.DefaultCredentialTTL-time.Minute {
		t.Errorf("username %q: expiry %v (%v), want %v from now", tu.Username, exp, err, turnserver.DefaultCredentialTTL)
	}
	if turnserver.DefaultCredentialTTL > 15*time.Minute {
		t.Errorf("credentials live %v: a copied credential is worth too much", turnserver.DefaultCredentialTTL)
	}
	if join.Session != id {
		t.Errorf("credentials minted for %q, viewer is %q", id, join.Session)
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(tu.Username))
	if tu.Credential != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Errorf("credential %q is not HMAC-SHA1(secret, username)", tu.Credential)
	}
	// The device got exactly what the browser got.
	var dt []signalwire.ICEServer
	for _, s := range join.ICEServers {
		if s.Username != "" {
			dt = append(dt, s)
		}
	}
	if len(dt) != 1 || dt[0].Username != tu.Username || dt[0].Credential != tu.Credential {
		t.Errorf("device's TURN servers %+v, browser's %+v", dt, tu)
	}
}
