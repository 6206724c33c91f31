package meshsim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/mesh"
)

// bootstrapNodes is how many of the first nodes the others join through,
// as a community would run a handful of stable bootstrap nodes.
const bootstrapNodes = 3

// Sim is a running simulated mesh: every node is a DHT server (a bootstrap
// node, a bridge or a publicly reachable device).
type Sim struct {
	mn    mocknet.Mocknet
	log   *slog.Logger
	Nodes []*mesh.Host

	mu    sync.Mutex
	dead  map[int]bool
	quiet map[int]bool // silenced
}

// Build starts n nodes on a fresh mocknet and joins them into one mesh,
// joinParallel at a time. Links carry no latency while the mesh forms (only
// CPU matters then); SetLatency sets it afterwards.
func Build(ctx context.Context, n, joinParallel int, log *slog.Logger) (*Sim, error) {
	if n < bootstrapNodes+2 {
		return nil, fmt.Errorf("meshsim: need at least %d nodes, got %d", bootstrapNodes+2, n)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Sim{mn: mocknet.New(), log: log, Nodes: make([]*mesh.Host, n), dead: map[int]bool{}, quiet: map[int]bool{}}
	hosts := make([]host.Host, n)
	for i := range n {
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, errors.Join(err, s.Close())
		}
		addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", (i>>16)&0xff, (i>>8)&0xff, i&0xff))
		if err != nil {
			return nil, errors.Join(err, s.Close())
		}
		h, err := s.mn.AddPeer(priv, addr)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("meshsim: add peer: %w", err), s.Close())
		}
		hosts[i] = h
	}
	if err := s.mn.LinkAll(); err != nil {
		return nil, errors.Join(fmt.Errorf("meshsim: link peers: %w", err), s.Close())
	}

	start := func(i int, boot []ma.Multiaddr) error {
		node, err := mesh.New(ctx, mesh.Config{Host: hosts[i], Bootstrap: boot, Server: true, Logger: log})
		if err != nil {
			return fmt.Errorf("meshsim: start node %d: %w", i, err)
		}
		s.Nodes[i] = node
		return nil
	}
	if err := start(0, nil); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	for i := 1; i < bootstrapNodes; i++ {
		if err := start(i, s.Nodes[0].Addrs()); err != nil {
			return nil, errors.Join(err, s.Close())
		}
	}
	var boot []ma.Multiaddr
	for i := range bootstrapNodes {
		boot = append(boot, s.Nodes[i].Addrs()...)
	}
	sem := make(chan struct{}, max(joinParallel, 1))
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := bootstrapNodes; i < n; i++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = start(i, boot)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// SetLatency sets the one-way latency of every link.
func (s *Sim) SetLatency(d time.Duration) {
	for _, l := range s.mn.Links() {
		for _, ls := range l {
			for link := range ls {
				link.SetOptions(mocknet.LinkOptions{Latency: d})
			}
		}
	}
	s.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: d})
}

// Alive reports whether node i runs.
func (s *Sim) Alive(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.dead[i] && s.Nodes[i] != nil
}

// Reachable reports whether node i runs and answers.
func (s *Sim) Reachable(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.dead[i] && !s.quiet[i] && s.Nodes[i] != nil
}

// Silence makes node i unreachable without closing anything, as a power
// cut or a network partition would: what is sent to or from it over any of
// its links (existing connections included) arrives only in an hour.
// Silence(i, false, latency) heals it; streams with data stuck in transit
// stay stuck until their owners time them out.
func (s *Sim) Silence(i int, on bool, latency time.Duration) {
	d := latency
	if on {
		d = time.Hour
	}
	id := s.Nodes[i].ID()
	for _, p := range s.mn.Peers() {
		if p == id {
			continue
		}
		for _, l := range s.mn.LinksBetweenPeers(id, p) {
			l.SetOptions(mocknet.LinkOptions{Latency: d})
		}
	}
	s.mu.Lock()
	s.quiet[i] = on
	s.mu.Unlock()
}

// Kill stops node i as a crash would: its connections drop and it can no
// longer be dialled. Records it stored are gone with it.
func (s *Sim) Kill(i int) error {
	s.mu.Lock()
	if s.dead[i] {
		s.mu.Unlock()
		return nil
	}
	s.dead[i] = true
	s.mu.Unlock()
	id := s.Nodes[i].ID()
	// Unlink first: mocknet would otherwise let peers redial a closed
	// host, which a crashed machine never answers.
	for _, p := range s.mn.Peers() {
		if p != id {
			s.mn.UnlinkPeers(id, p)
		}
	}
	return s.Nodes[i].Close()
}

// Close stops every node, one at a time, and the network. One at a time
// because mocknet delivers a closing connection's event to the other end's
// event bus even when that host is closing too, and with hundreds of hosts
// closing at once such an event can wait forever on a bus nobody reads.
func (s *Sim) Close() error {
	var errs []error
	for i, n := range s.Nodes {
		if n == nil || !s.Alive(i) {
			continue
		}
		s.mu.Lock()
		s.dead[i] = true
		s.mu.Unlock()
		errs = append(errs, n.Close())
	}
	errs = append(errs, s.mn.Close())
	return errors.Join(errs...)
}

// index returns the node index of a peer ID, or -1.
func (s *Sim) index(id peer.ID) int {
	for i, n := range s.Nodes {
		if n != nil && n.ID() == id {
			return i
		}
	}
	return -1
}
