package role

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/turnserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var loopback = []string{"/ip4/127.0.0.1/tcp/0"}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// role is what every role is to the command line.
type role interface {
	Start(context.Context) error
	Close() error
}

// ports are the TCP and UDP addresses a role holds.
type ports struct{ tcp, udp []string }

// get answers 200 on url, or fails the test.
func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}

// TestCloseReleases starts every role with every server it has, checks
// each serves, closes them, and checks that each gave back every port it
// held and every goroutine it started, and that a second Close is
// harmless.
func TestCloseReleases(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	held := map[string]ports{}
	var roles []struct {
		name string
		r    role
	}
	add := func(name string, r role, p ports) {
		if err := r.Start(ctx); err != nil {
			t.Fatalf("%s: Start: %v", name, err)
		}
		roles = append(roles, struct {
			name string
			r    role
		}{name, r})
		held[name] = p
	}
	defer func() {
		for _, r := range roles {
			r.r.Close()
		}
	}()
	hostPorts := func(addrs []string, p *ports) {
		for _, a := range addrs {
			// /ip4/127.0.0.1/tcp/PORT
			f := strings.Split(a, "/")
			if len(f) >= 5 && f[3] == "tcp" {
				p.tcp = append(p.tcp, net.JoinHostPort(f[2], f[4]))
			}
		}
	}

	boot, err := NewBootstrap(ctx, BootstrapConfig{Mesh: MeshConfig{Listen: loopback}, Ops: "127.0.0.1:0", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var bp ports
	hostPorts(Addrs(boot.Host().Addrs()), &bp)
	add("bootstrap", boot, bp)
	bp.tcp = append(bp.tcp, boot.OpsAddr())
	held["bootstrap"] = bp
	get(t, client, "http://"+boot.OpsAddr()+"/healthz")
	bootAddrs := Addrs(boot.Host().Addrs())

	tr, err := NewTURN(ctx, TURNConfig{
		TURNServerConfig: TURNServerConfig{Secret: "s", Listen: "127.0.0.1", Port: turnserver.Ephemeral, AllowPrivatePeers: true},
		Ops:              "127.0.0.1:0", Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	add("turn", tr, ports{})
	held["turn"] = ports{tcp: []string{tr.OpsAddr(), tr.Server().TCPAddr().String()}, udp: []string{tr.Server().UDPAddr().String()}}
	get(t, client, "http://"+tr.OpsAddr()+"/metrics")

	br, err := NewBridge(ctx, BridgeConfig{
		Mesh: MeshConfig{Listen: loopback, Bootstrap: bootAddrs},
		HTTP: "127.0.0.1:0", Admin: "127.0.0.1:0",
		TURN:   BridgeTURNConfig{Run: true, TURNServerConfig: TURNServerConfig{Listen: "127.0.0.1", Port: turnserver.Ephemeral}},
		Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	add("bridge", br, ports{})
	var brp ports
	hostPorts(Addrs(br.Host().Addrs()), &brp)
	brp.tcp = append(brp.tcp, strings.TrimPrefix(br.URL(), "http://"), br.AdminAddr(), br.TURN().TCPAddr().String())
	brp.udp = append(brp.udp, br.TURN().UDPAddr().String())
	held["bridge"] = brp
	get(t, client, br.URL()+"/")
	get(t, client, "http://"+br.AdminAddr()+"/healthz")

	dev, err := NewDevice(ctx, DeviceConfig{
		Mesh:      MeshConfig{Listen: loopback, Bootstrap: bootAddrs},
		DHTServer: true, Rooms: []string{"cam"},
		Ops:   "127.0.0.1:0",
		State: filepath.Join(t.TempDir(), "state.json"),
		// A receiver that is never there: the hook's goroutine must end
		// at Close all the same.
		Webhook: "http://127.0.0.1:1/events", WebhookTimeout: time.Second,
		Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	add("device", dev, ports{})
	var dp ports
	hostPorts(Addrs(dev.Host().Addrs()), &dp)
	dp.tcp = append(dp.tcp, dev.OpsAddr())
	held["device"] = dp
	get(t, client, "http://"+dev.OpsAddr()+"/listConfig")

	for i := len(roles) - 1; i >= 0; i-- {
		r := roles[i]
		if err := r.r.Close(); err != nil {
			t.Errorf("%s: Close: %v", r.name, err)
		}
		if err := r.r.Close(); err != nil {
			t.Errorf("%s: second Close: %v", r.name, err)
		}
		p := held[r.name]
		if len(p.tcp) == 0 {
			t.Errorf("%s: no ports recorded", r.name)
		}
		for _, a := range p.tcp {
			l, err := net.Listen("tcp", a)
			if err != nil {
				t.Errorf("%s: TCP %s still held after Close: %v", r.name, a, err)
				continue
			}
			l.Close()
		}
		for _, a := range p.udp {
			c, err := net.ListenPacket("udp", a)
			if err != nil {
				t.Errorf("%s: UDP %s still held after Close: %v", r.name, a, err)
				continue
			}
			c.Close()
		}
	}
}

// TestConfigErrorsNameTheKey: a value a role cannot run with stops it in
// its constructor with a *ConfigError naming the key to fix, and nothing
// started is left running (TestMain checks the goroutines).
func TestConfigErrorsNameTheKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	boot, err := NewBootstrap(ctx, BootstrapConfig{Mesh: MeshConfig{Listen: loopback}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer boot.Close()
	bootAddrs := Addrs(boot.Host().Addrs())
	device := func(f func(*DeviceConfig)) func() error {
		return func() error {
			c := DeviceConfig{Mesh: MeshConfig{Listen: loopback, Bootstrap: bootAddrs}, Rooms: []string{"cam"}, Logger: quiet()}
			f(&c)
			d, err := NewDevice(ctx, c)
			if err == nil {
				d.Close()
			}
			return err
		}
	}
	bridge := func(f func(*BridgeConfig)) func() error {
		return func() error {
			c := BridgeConfig{Mesh: MeshConfig{Listen: loopback, Bootstrap: bootAddrs}, HTTP: "127.0.0.1:0", Logger: quiet()}
			f(&c)
			b, err := NewBridge(ctx, c)
			if err == nil {
				b.Close()
			}
			return err
		}
	}
	cases := map[string]struct {
		key string
		new func() error
	}{
		"device rooms":         {"room", device(func(c *DeviceConfig) { c.Rooms = nil })},
		"device bootstrap":     {"bootstrap", device(func(c *DeviceConfig) { c.Mesh.Bootstrap = nil })},
		"device bad bootstrap": {"bootstrap", device(func(c *DeviceConfig) { c.Mesh.Bootstrap = []string{"/nonsense"} })},
		"device control-allow": {"control-allow", device(func(c *DeviceConfig) { c.ControlAllow = []string{"nope"} })},
		"device room-secret":   {"room-secret", device(func(c *DeviceConfig) { c.RoomSecrets = []string{"cam"} })},
		"device webhook":       {"webhook", device(func(c *DeviceConfig) { c.Webhook = "ftp://x" })},
		"device stream":        {"stream", device(func(c *DeviceConfig) { c.Streams = []string{"a=/nonexistent.h264"} })},
		"bridge admin-allow":   {"admin-allow", bridge(func(c *BridgeConfig) { c.AdminAllow = []string{"300.1.1.1"} })},
		"bridge allowed-room":  {"allowed-room", bridge(func(c *BridgeConfig) { c.AllowedRooms = []string{""} })},
		"bridge turn-url":      {"turn-url", bridge(func(c *BridgeConfig) { c.TURN.URLs = []string{"turn:x:3478"} })},
		"bridge turn-relay-ports": {"turn-relay-ports", bridge(func(c *BridgeConfig) {
			c.TURN.Run, c.TURN.Listen, c.TURN.Port, c.TURN.RelayPorts = true, "127.0.0.1", turnserver.Ephemeral, "high-low"
		})},
		"bridge turn-cert": {"turn-cert", bridge(func(c *BridgeConfig) {
			c.TURN.Run, c.TURN.Listen, c.TURN.Port, c.TURN.Cert = true, "127.0.0.1", turnserver.Ephemeral, "cert.pem"
		})},
		"bridge tls-cert":      {"tls-cert", bridge(func(c *BridgeConfig) { c.TLS.Cert = "cert.pem" })},
		"bridge turn-on-https": {"turn-on-https", bridge(func(c *BridgeConfig) { c.TLS.TURNOnHTTPS = true })},
		"turn secret": {"turn-secret", func() error {
			_, err := NewTURN(ctx, TURNConfig{Logger: quiet()})
			return err
		}},
		"log level":  {"log-level", func() error { _, err := LogConfig{Level: "loud", Format: "text"}.Logger(nil); return err }},
		"log format": {"log-format", func() error { _, err := LogConfig{Level: "info", Format: "xml"}.Logger(nil); return err }},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.new()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != c.key || !strings.Contains(err.Error(), "--"+c.key) {
				t.Errorf("error %v, want a *ConfigError for key %q", err, c.key)
			}
		})
	}
}

// TestBusyPortNamesTheKey: a server that cannot listen says which key's
// address it could not take, and the role it belongs to cleans up.
func TestBusyPortNamesTheKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := NewBootstrap(ctx, BootstrapConfig{Mesh: MeshConfig{Listen: loopback}, Ops: l.Addr().String(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Start(ctx); err == nil || !strings.Contains(err.Error(), "--ops "+l.Addr().String()) {
		t.Errorf("Start on a busy port: %v, want an error naming --ops and the address", err)
	}
}
