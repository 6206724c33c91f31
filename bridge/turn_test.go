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

	"github.com/ersmesh/ersmesh/internal/ersviewer"
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

// TestTURNCredentialsPerViewer: with TURN configured, a viewer's
// turnservers event and the join its device receives carry the same
// short-lived credentials, minted for that viewer from the shared secret.
func TestTURNCredentialsPerViewer(t *testing.T) {
	const secret = "fleet-secret"
	urls := []string{"turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"}

	// A device that answers every join with a refusal carrying the ICE
	// servers it was given, so the viewer side can compare.
	dev := newHost(t)
	joins := make(chan *signalwire.Message, 4)
	dev.SetStreamHandler(signalwire.ProtocolID, func(s network.Stream) {
		c := signalwire.NewConn(s)
		m, err := c.Recv(5 * time.Second)
		if err != nil {
			s.Reset()
			return
		}
		joins <- m
		c.Send(&signalwire.Message{Kind: signalwire.KindReject, Reason: "test device serves nobody"})
		c.Close()
	})

	b, err := New(Config{
		Host:        newHost(t),
		Resolver:    fixedResolver{peer.AddrInfo{ID: dev.ID(), Addrs: dev.Addrs()}},
		STUNServers: []string{"stun:stun.example.org:3478"},
		TURN:        &turnserver.Issuer{Secret: secret, URLs: urls, TTL: time.Hour},
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

	seen := map[string]bool{}
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var got ersviewer.Result
		_, err := ersviewer.Play(ctx, ersviewer.Options{Bridge: "http://" + l.Addr().String(), Room: "r", Stream: "s", Servers: &got})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "serves nobody") {
			t.Fatalf("Play: %v, want the device's refusal", err)
		}
		var join *signalwire.Message
		select {
		case join = <-joins:
		case <-time.After(5 * time.Second):
			t.Fatal("device got no join")
		}
		if len(got.TURN) != 1 || len(got.STUN) != 1 {
			t.Fatalf("browser got stun %+v turn %+v", got.STUN, got.TURN)
		}
		turn := got.TURN[0]
		if strings.Join(turn.URLs, " ") != strings.Join(urls, " ") {
			t.Errorf("turn URLs %q, want %q", turn.URLs, urls)
		}
		exp, id, err := turnserver.ParseUsername(turn.Username)
		if err != nil || time.Until(exp) < 50*time.Minute || time.Until(exp) > time.Hour {
			t.Errorf("username %q: expiry %v, %v", turn.Username, exp, err)
		}
		if join.Session != id {
			t.Errorf("credentials minted for %q, viewer is %q", id, join.Session)
		}
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write([]byte(turn.Username))
		if turn.Credential != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			t.Errorf("credential %q is not HMAC-SHA1(secret, username)", turn.Credential)
		}
		if seen[turn.Username] {
			t.Errorf("username %q handed out twice", turn.Username)
		}
		seen[turn.Username] = true
		// The device gets exactly what the browser got.
		var gave []signalwire.ICEServer
		for _, is := range append(append([]ersviewer.ICEServer{}, got.STUN...), got.TURN...) {
			gave = append(gave, signalwire.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
		}
		want, _ := json.Marshal(gave)
		have, _ := json.Marshal(join.ICEServers)
		if string(want) != string(have) {
			t.Errorf("device's ICE servers %s, browser's %s", have, want)
		}
	}
}
