package mesh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/internal/ratelog"
	"github.com/ersmesh/ersmesh/room"
)

// ProtocolPrefix is the prefix of the DHT protocols ("/ersmesh/kad/1.0.0"):
// a private DHT that never mixes with the public IPFS one, which would
// refuse room records anyway.
const ProtocolPrefix = "/ersmesh"

// DefaultMaxRecordTTL is the default Config.MaxRecordTTL.
const DefaultMaxRecordTTL = room.DefaultMaxTTL

// DefaultListenAddrs are the addresses a node listens on when
// Config.ListenAddrs is empty: every interface, any port, TCP and QUIC.
var DefaultListenAddrs = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

// Startup bounds, so that New returns in seconds even with a dead bootstrap
// peer and a context with no deadline.
const (
	bootstrapDialTimeout = 10 * time.Second
	routingTableWait     = 5 * time.Second
	refreshTimeout       = 10 * time.Second
)

// ErrClosed is returned by operations on a closed Host.
var ErrClosed = errors.New("mesh node closed")

// Config says how a node joins the mesh.
type Config struct {
	// IdentityFile is the node's Ed25519 key file, created (mode 0600) on
	// first run so the peer ID survives restarts. "" means a new key each
	// run: fine for tests and bridges, wrong for a device with owned rooms.
	IdentityFile string
	// ListenAddrs are multiaddrs to listen on; empty means
	// DefaultListenAddrs.
	ListenAddrs []string
	// Bootstrap are peers dialled first, each a multiaddr ending in
	// /p2p/<peer ID>. A node with none (the first bootstrap node) waits for
	// others to dial it.
	Bootstrap []multiaddr.Multiaddr
	// Server runs the DHT in server mode: the node stores records and
	// answers queries. Bootstrap nodes and bridges must; a device should
	// when it is publicly reachable. Otherwise the DHT runs in auto mode: a
	// client that turns into a server once libp2p finds the node reachable.
	Server bool
	// MaxRecordTTL bounds how far in the future room records this node
	// accepts may expire; zero means DefaultMaxRecordTTL. Every node of a
	// mesh should use the same value.
	MaxRecordTTL time.Duration
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
	// HostOptions are extra libp2p options, appended after the node's own.
	HostOptions []libp2p.Option

	// RelayService runs a circuit relay v2 service and answers AutoNAT
	// dial-backs, so that nodes behind NAT stay reachable through this
	// one. Bootstrap nodes do; bridges may.
	RelayService bool
	// NATTraversal keeps a node that may sit behind NAT reachable: when
	// AutoNAT (or Reachability) says it is private, it reserves slots on
	// Relays and advertises the relayed addresses; hole punching (DCUtR)
	// then upgrades relayed connections to direct ones where the NATs
	// allow. Devices do.
	NATTraversal bool
	// Relays are the relays NATTraversal uses; empty means the bootstrap
	// peers. Each must end in /p2p/<peer ID>.
	Relays []multiaddr.Multiaddr
	// Reachability overrides AutoNAT; the zero value lets it decide.
	Reachability Reachability

	// PrivateAddrs says whether the node dials loopback and private
	// addresses of peers other than its bootstrap peers and relays (see
	// gater.go); the zero value decides from the bootstrap peers'
	// addresses. Ignored with Host.
	PrivateAddrs PrivateAddrs

	// Hardening (see connmgr.go, diversity.go, quota.go and
	// docs/hardening.md); zero values mean the defaults.
	ConnLow, ConnHigh  int           // connection manager watermarks
	ConnGrace          time.Duration // how long a new connection is never trimmed
	DiversityPerBucket int           // DHT servers per IP group per routing table bucket
	DiversityPerTable  int           // DHT servers per IP group in the routing table
	MaxRecordsPerPeer  int           // room records stored here per publisher
	MaxRecords         int           // room records stored here in all
	// Host, if set, is used instead of a new libp2p host, and the Host
	// closes it. Its peerstore must hold its private key. IdentityFile,
	// ListenAddrs and HostOptions are then ignored. Simulations use it to
	// run hundreds of nodes on one in-process network (mocknet).
	Host host.Host
}

// Host is a libp2p host in the ersmesh DHT. Roles register their own
// protocols on Host and use Publish and NewResolver for rooms.
type Host struct {
	log       *slog.Logger
	priv      crypto.PrivKey
	host      host.Host
	relay     *relay.Relay // nil unless Config.RelayService
	relays    *relayKeeper // nil unless Config.NATTraversal
	dht       *dht.IpfsDHT
	validator room.Validator
	records   *quotaStore // the DHT's value store, counted per publisher
	gater     *addrGater  // nil with Config.Host

	// ctx is cancelled by Close; every goroutine the node starts (for
	// publishers and lookups) watches it and is counted in wg.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed against wg.Add racing Close's wg.Wait
	closed bool
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// New starts a node: the host, the DHT, connections to the bootstrap peers
// and a first routing table refresh, so that a Publish or a Resolve right
// after New already reaches the mesh. ctx bounds the startup only.
func New(ctx context.Context, cfg Config) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxRecordTTL <= 0 {
		cfg.MaxRecordTTL = DefaultMaxRecordTTL
	}
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = DefaultListenAddrs
	}
	bootstrap, err := peer.AddrInfosFromP2pAddrs(cfg.Bootstrap...)
	if err != nil {
		return nil, fmt.Errorf("bootstrap peers must be multiaddrs ending in /p2p/<peer ID>: %w", err)
	}

	// A copy: dropPeer below reuses bootstrap's array, and auto relay reads
	// this slice from its own goroutines.
	relays := slices.Clone(bootstrap)
	if len(cfg.Relays) > 0 {
		if relays, err = peer.AddrInfosFromP2pAddrs(cfg.Relays...); err != nil {
			return nil, fmt.Errorf("relays must be multiaddrs ending in /p2p/<peer ID>: %w", err)
		}
	}
	natOpts, keeper, err := natOptions(&cfg, relays)
	if err != nil {
		return nil, err
	}
	cm, err := newConnManager(&cfg)
	if err != nil {
		return nil, err
	}
	allowPrivate := cfg.PrivateAddrs.decide(bootstrap, cfg.ListenAddrs)
	gater := newAddrGater(allowPrivate, exemptPeers(bootstrap, relays),
		ratelog.NewKeyed[peer.ID](cfg.Logger, gaterLogEvery, time.Second, 5, 4096))
	priv, h, err := newHost(cfg, append([]libp2p.Option{libp2p.ConnectionManager(cm), libp2p.ConnectionGater(gater)}, natOpts...))
	if err != nil {
		cm.Close()
		return nil, err
	}
	if cfg.Host != nil {
		cm.Close() // a given host brings its own, and its own gater
		gater = nil
	}
	var rel *relay.Relay
	if cfg.RelayService {
		if rel, err = startRelay(h); err != nil {
			return nil, errors.Join(err, h.Close())
		}
	}

	n := &Host{
		log:       cfg.Logger.With("peer", h.ID()),
		priv:      priv,
		host:      h,
		relay:     rel,
		gater:     gater,
		validator: room.Validator{MaxTTL: cfg.MaxRecordTTL},
	}
	n.records = newQuotaStore(dssync.MutexWrap(ds.NewMapDatastore()), h.ID(), cfg.MaxRecordsPerPeer, cfg.MaxRecords, n.log)
	// A bootstrap node may find its own address in a shared list.
	bootstrap = dropPeer(bootstrap, h.ID())

	mode := dht.ModeAuto
	if cfg.Server {
		mode = dht.ModeServer
	}
	n.dht, err = dht.New(h,
		dht.Mode(mode),
		dht.ProtocolPrefix(ProtocolPrefix),
		// Only room records: a fresh NamespacedValidator set with
		// dht.Validator replaces kad-dht's default /pk and /ipns
		// validators, so strangers cannot use our nodes as storage
		// for anything else.
		dht.Validator(record.NamespacedValidator{room.Namespace: n.validator}),
		// Records expire in minutes; nothing stored is worth keeping
		// for the DHT's default 48 hours.
		dht.MaxRecordAge(cfg.MaxRecordTTL+room.MaxClockSkew),
		dht.ValueGCInterval(cfg.MaxRecordTTL),
		// ersmesh looks rooms up by value; provider records would only
		// be storage for strangers.
		dht.DisableProviders(),
		// Used to refill the routing table if it ever empties.
		dht.BootstrapPeers(bootstrap...),
		// Bounds on what strangers can make us store, and on how much
		// of our routing table one subnet can fill.
		dht.ValueDatastore(n.records),
		dht.RoutingTablePeerDiversityFilter(newDiversityFilter(h, cfg.DiversityPerBucket, cfg.DiversityPerTable, bootstrap)),
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("start DHT: %w", err), n.closeRelay(), h.Close())
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())

	departures, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("watch peer connections: %w", err), n.Close())
	}
	n.goTracked(func() { n.watchDepartures(departures) })
	if keeper != nil {
		n.relays = keeper
		n.goTracked(func() { keeper.run(n.ctx, h) })
	}

	if err := n.joinMesh(ctx, bootstrap); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	if len(bootstrap) > 0 {
		n.goTracked(func() { n.keepBootstrap(bootstrap) })
	}
	n.log.Info("joined the mesh", "addrs", n.Addrs(), "dht_server", cfg.Server, "bootstrap_peers", len(bootstrap),
		"relay_service", cfg.RelayService, "nat_traversal", cfg.NATTraversal, "dials_private_addrs", gater == nil || gater.allowPrivate)
	return n, nil
}

// newHost returns cfg.Host with its key, or a new host.
// newHost returns cfg.Host, or a new host with the node's identity, its
// listen addresses, our resource limits, extra (connection manager, NAT
// traversal) and cfg.HostOptions.
func newHost(cfg Config, extra []libp2p.Option) (crypto.PrivKey, host.Host, error) {
	if cfg.Host != nil {
		priv := cfg.Host.Peerstore().PrivKey(cfg.Host.ID())
		if priv == nil {
			return nil, nil, errors.Join(errors.New("the given libp2p host has no private key in its peerstore"), cfg.Host.Close())
		}
		return priv, cfg.Host, nil
	}
	var priv crypto.PrivKey
	var err error
	if cfg.IdentityFile != "" {
		priv, err = LoadOrCreateIdentity(cfg.IdentityFile)
	} else {
		priv, _, err = crypto.GenerateEd25519Key(rand.Reader)
	}
	if err != nil {
		return nil, nil, err
	}
	rm, err := resourceManager()
	if err != nil {
		return nil, nil, err
	}
	opts := append([]libp2p.Option{
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.ResourceManager(rm),
	}, extra...)
	opts = append(opts, cfg.HostOptions...)
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("start libp2p host: %w", err)
	}
	return priv, h, nil
}

// joinMesh dials the bootstrap peers, waits until at least one of them is in
// the routing table (identify must finish first) and refreshes the table, so
// that the first query finds more than the bootstrap peers.
func (n *Host) joinMesh(ctx context.Context, bootstrap []peer.AddrInfo) error {
	if len(bootstrap) == 0 {
		return nil
	}
	dialCtx, cancel := context.WithTimeout(ctx, bootstrapDialTimeout)
	defer cancel()
	errs := make([]error, len(bootstrap))
	var wg sync.WaitGroup
	for i, ai := range bootstrap {
		wg.Go(func() {
			if err := n.host.Connect(dialCtx, ai); err != nil {
				errs[i] = fmt.Errorf("bootstrap peer %s: %w", ai.ID, err)
			}
		})
	}
	wg.Wait()
	connected := 0
	for _, err := range errs {
		if err == nil {
			connected++
		} else {
			n.log.Warn("cannot reach a bootstrap peer", "error", err)
		}
	}
	if connected == 0 {
		return fmt.Errorf("could not reach any of the %d bootstrap peers: %w", len(bootstrap), errors.Join(errs...))
	}

	waitCtx, cancel := context.WithTimeout(ctx, routingTableWait)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n.dht.RoutingTable().Size() == 0 {
		select {
		case <-tick.C:
		case <-waitCtx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("join the mesh: %w", ctx.Err())
			}
			// Connected but none speaks our DHT as a server:
			// carry on, kad-dht adds peers as they show up.
			n.log.Warn("no bootstrap peer joined the routing table; are they running the DHT in server mode?")
			return nil
		}
	}

	refreshCtx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	select {
	case err := <-n.dht.RefreshRoutingTable():
		if err != nil {
			n.log.Debug("routing table refresh", "error", err)
		}
	case <-refreshCtx.Done():
		if ctx.Err() != nil {
			return fmt.Errorf("join the mesh: %w", ctx.Err())
		}
		n.log.Warn("routing table refresh is slow; continuing")
	}
	return nil
}

func dropPeer(infos []peer.AddrInfo, id peer.ID) []peer.AddrInfo {
	out := infos[:0]
	for _, ai := range infos {
		if ai.ID != id {
			out = append(out, ai)
		}
	}
	return out
}

func (n *Host) closeRelay() error {
	if n.relay == nil {
		return nil
	}
	return n.relay.Close()
}

// RelaysHeld returns the relays the node holds reservations on (none
// without Config.NATTraversal, or while publicly reachable).
func (n *Host) RelaysHeld() []peer.ID {
	if n.relays == nil {
		return nil
	}
	return n.relays.heldRelays()
}

// PrivateDialsRefused counts the dials the gater refused (see
// PrivateAddrs).
func (n *Host) PrivateDialsRefused() uint64 {
	if n.gater == nil {
		return 0
	}
	return n.gater.refused.Load()
}

// RecordStats reports the room records this node stores for the mesh, and
// those it refused over its quotas.
func (n *Host) RecordStats() RecordStats { return n.records.stats() }

// Libp2p returns the underlying libp2p host, for roles to register their protocols.
func (n *Host) Libp2p() host.Host { return n.host }

// DHT returns the node's DHT.
func (n *Host) DHT() *dht.IpfsDHT { return n.dht }

// PrivKey returns the node's identity key, for roles that sign what they
// send (a device signs its offers with it).
func (n *Host) PrivKey() crypto.PrivKey { return n.priv }

// ID returns the node's peer ID.
func (n *Host) ID() peer.ID { return n.host.ID() }

// Addrs returns the node's addresses as full multiaddrs ending in
// /p2p/<peer ID>: what other nodes take as Config.Bootstrap.
func (n *Host) Addrs() []multiaddr.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil { // only for an empty peer ID, which a host never has
		return nil
	}
	return addrs
}

// goTracked runs f in a goroutine that Close waits for. It returns false,
// and does not run f, once the node is closing.
func (n *Host) goTracked(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Go(f)
	return true
}

// Close stops the node's publishers and lookups, waits for them, then
// closes the DHT and the host. Records it published stay in the DHT until
// they expire. Close is idempotent.
func (n *Host) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.cancel()
		n.wg.Wait()
		n.closeErr = errors.Join(n.dht.Close(), n.closeRelay(), n.host.Close())
		if n.closeErr != nil {
			n.closeErr = fmt.Errorf("close mesh node: %w", n.closeErr)
		}
	})
	return n.closeErr
}
