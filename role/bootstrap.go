package role

import (
	"context"
	"flag"
	"log/slog"

	"github.com/ersmesh/ersmesh/bootstrap"
	"github.com/ersmesh/ersmesh/mesh"
)

// BootstrapConfig configures a bootstrap node.
type BootstrapConfig struct {
	Mesh   MeshConfig
	Ops    string // address of /metrics, /healthz, /readyz; "" none
	Logger *slog.Logger
}

// DefaultBootstrapConfig listens on fixed ports (4001), so the multiaddrs
// it prints stay the same across restarts and can be written into other
// nodes' configs.
func DefaultBootstrapConfig() BootstrapConfig {
	m := DefaultMeshConfig("bootstrap")
	m.Listen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}
	return BootstrapConfig{Mesh: m, Ops: "127.0.0.1:9400"}
}

// Flags binds the bootstrap role's flags.
func (c *BootstrapConfig) Flags(fs *flag.FlagSet) {
	c.Mesh.Flags(fs)
	fs.StringVar(&c.Ops, "ops", c.Ops, "`address` for /metrics, /healthz and /readyz (empty: none)")
}

// Bootstrap is a running bootstrap node.
type Bootstrap struct {
	served
	cfg  BootstrapConfig
	host *mesh.Host
}

// NewBootstrap checks cfg and starts the node; Start serves its ops
// endpoints.
func NewBootstrap(ctx context.Context, cfg BootstrapConfig) (_ *Bootstrap, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &Bootstrap{served: newServed("bootstrap", cfg.Logger), cfg: cfg}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	mcfg, err := cfg.Mesh.mesh(true, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if b.host, err = bootstrap.New(ctx, mcfg); err != nil {
		return nil, err
	}
	b.st.push(b.host.Close)
	if err := b.host.RegisterMetrics(b.ops.Registerer()); err != nil {
		return nil, err
	}
	return b, nil
}

// Start serves the ops endpoints.
func (b *Bootstrap) Start(context.Context) error { return b.serveOps(b.cfg.Ops, b.ops.Handler()) }

// Host is the node's libp2p host; its Addrs are what others bootstrap from.
func (b *Bootstrap) Host() *mesh.Host { return b.host }
