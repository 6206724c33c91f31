package role

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/mesh"
)

// MeshConfig is the libp2p side every mesh role shares.
type MeshConfig struct {
	// Identity is the Ed25519 key file, created on first run; "" means a
	// new key each run (tests, the demo).
	Identity  string
	Listen    []string // libp2p listen multiaddrs; empty: mesh.DefaultListenAddrs
	Bootstrap []string // bootstrap peer multiaddrs with /p2p/<id>
	// Hardening (docs/hardening.md); zero values take mesh's defaults.
	ConnLow, ConnHigh             int
	MaxRecordsPerPeer, MaxRecords int
	// PrivateAddrs is whether the node dials loopback and private
	// addresses of peers other than its bootstrap peers and relays:
	// "auto" (or ""), "allow" (the lab switch) or "refuse"; see
	// mesh.PrivateAddrs.
	PrivateAddrs string
}

// DefaultMeshConfig is the command line's default for role: its identity
// kept in the user's config directory, the hardening defaults.
func DefaultMeshConfig(role string) MeshConfig {
	return MeshConfig{
		Identity: DefaultIdentity(role),
		ConnLow:  mesh.DefaultConnLow, ConnHigh: mesh.DefaultConnHigh,
		MaxRecordsPerPeer: mesh.DefaultMaxRecordsPerPeer, MaxRecords: mesh.DefaultMaxRecords,
		PrivateAddrs: "auto",
	}
}

// DefaultIdentity is where role keeps its key: beside the other ersmesh
// files in the user's config directory ("" when there is none).
func DefaultIdentity(role string) string { return inConfigDir(role + ".key") }

func inConfigDir(name string) string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "ersmesh", name)
}

// Flags binds the mesh flags every mesh role takes.
func (c *MeshConfig) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Identity, "identity", c.Identity, "Ed25519 identity key `file`, created on first run (keeps the peer ID stable)")
	listVar(fs, &c.Listen, "listen", "libp2p listen `multiaddr` (repeatable)")
	listVar(fs, &c.Bootstrap, "bootstrap", "bootstrap peer `multiaddr` with /p2p/<id> (repeatable)")
	fs.IntVar(&c.ConnLow, "conn-low", c.ConnLow, "libp2p connections kept when trimming (connections carrying viewers are never trimmed)")
	fs.IntVar(&c.ConnHigh, "conn-high", c.ConnHigh, "libp2p connections beyond which the least useful are trimmed down to --conn-low")
	fs.IntVar(&c.MaxRecordsPerPeer, "max-records-per-peer", c.MaxRecordsPerPeer, "room records this node stores for the mesh per publisher (DHT servers)")
	fs.IntVar(&c.MaxRecords, "max-records", c.MaxRecords, "room records this node stores for the mesh in all (DHT servers)")
	fs.StringVar(&c.PrivateAddrs, "private-addrs", c.PrivateAddrs, "dial loopback and private addresses of peers other than the bootstrap peers and relays: auto (only when the bootstrap peers are on such addresses: a LAN or lab mesh), allow (the lab switch) or refuse")
}

// mesh is the mesh.Config this one describes.
func (c MeshConfig) mesh(server bool, log *slog.Logger) (mesh.Config, error) {
	cfg := mesh.Config{IdentityFile: c.Identity, ListenAddrs: c.Listen, Server: server, Logger: log,
		ConnLow: c.ConnLow, ConnHigh: c.ConnHigh, MaxRecordsPerPeer: c.MaxRecordsPerPeer, MaxRecords: c.MaxRecords}
	switch c.PrivateAddrs {
	case "auto", "":
	case "allow":
		cfg.PrivateAddrs = mesh.PrivateAddrsAllow
	case "refuse":
		cfg.PrivateAddrs = mesh.PrivateAddrsRefuse
	default:
		return cfg, keyErr("private-addrs", "%q: want auto, allow or refuse", c.PrivateAddrs)
	}
	for _, s := range c.Bootstrap {
		a, err := multiaddr.NewMultiaddr(s)
		if err != nil {
			return cfg, keyErr("bootstrap", "%q: %w", s, err)
		}
		cfg.Bootstrap = append(cfg.Bootstrap, a)
	}
	return cfg, nil
}

// Addrs are multiaddrs as the strings MeshConfig.Bootstrap takes.
func Addrs(as []multiaddr.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}
