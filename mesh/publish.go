package mesh

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ersmesh/ersmesh/room"
)

// addrChangeDelay coalesces the bursts of address updates a host emits (a
// new listener, a relay reservation, an observed address) into one
// republish.
const addrChangeDelay = time.Second

// Publisher keeps a device's room records alive in the DHT: it republishes
// them every third of their time to live, and at once when the host's
// addresses change (a relay reservation, a new interface), so bridges always
// dial current addresses.
type Publisher struct {
	n   *Host
	ttl time.Duration

	mu    sync.Mutex // guards rooms: Add and Remove run beside the republishing goroutine
	rooms []string   // canonical names

	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// Publish puts a signed record for each room in the DHT, returning an error
// if that first publication fails, and then keeps them alive until the
// Publisher or the Host is closed. ttl is the records' lifetime: after the
// device stops, lookups forget it within ttl. It must not exceed the mesh's
// MaxRecordTTL, or other nodes would refuse the records.
//
// Owned rooms ("name@<peer ID>") must be owned by this node. rooms may be
// empty: a device controlled at run time (package node/control) adds its
// rooms later with Add.
func (n *Host) Publish(ctx context.Context, rooms []string, ttl time.Duration) (*Publisher, error) {
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("publish: the record time to live must be positive, got %s", ttl)
	}
	if maxTTL := n.validator.MaxTTL; ttl > maxTTL {
		return nil, fmt.Errorf("publish: a record time to live of %s exceeds the mesh's limit of %s", ttl, maxTTL)
	}
	p := &Publisher{n: n, ttl: ttl, done: make(chan struct{})}
	for _, r := range rooms {
		name, err := n.canonicalRoom(r)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(p.rooms, name) {
			p.rooms = append(p.rooms, name)
		}
	}

	addrs := n.publishAddrs()
	if err := p.publish(ctx, p.rooms, addrs); err != nil {
		return nil, err
	}

	var loopCtx context.Context
	loopCtx, p.cancel = context.WithCancel(n.ctx)
	if !n.goTracked(func() { p.run(loopCtx, addrs) }) {
		p.cancel()
		return nil, ErrClosed
	}
	n.log.Info("rooms published", "rooms", p.rooms, "ttl", ttl)
	return p, nil
}

// canonicalRoom checks that this node may publish r and returns its
// canonical name.
func (n *Host) canonicalRoom(r string) (string, error) {
	name, err := room.ParseName(r)
	if err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	if owner, ok := name.Owner(); ok && owner != n.ID() {
		return "", fmt.Errorf("publish %q: %w: this node is %s", r, room.ErrNotOwner, n.ID())
	}
	return name.String(), nil
}

// Add publishes one more room and keeps it alive with the others. It
// returns once the first record is in the DHT, or the error that kept it
// out (then the room is not added). Adding a room already published only
// refreshes its record.
func (p *Publisher) Add(ctx context.Context, r string) error {
	name, err := p.n.canonicalRoom(r)
	if err != nil {
		return err
	}
	if p.n.ctx.Err() != nil {
		return ErrClosed
	}
	if err := p.publish(ctx, []string{name}, p.n.publishAddrs()); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.rooms, name) {
		p.rooms = append(p.rooms, name)
	}
	p.n.log.Info("room published", "room", name, "ttl", p.ttl)
	return nil
}

// Remove stops republishing room r and reports whether it was published.
// A DHT record cannot be withdrawn: lookups still find the last one until
// it expires, within the record time to live.
func (p *Publisher) Remove(r string) bool {
	name, err := room.ParseName(r)
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(p.rooms, name.String())
	if i < 0 {
		return false
	}
	p.rooms = slices.Delete(p.rooms, i, i+1)
	p.n.log.Info("room unpublished; its record expires", "room", name.String(), "within", p.ttl)
	return true
}

// publish puts a fresh record of each room, with addrs.
func (p *Publisher) publish(ctx context.Context, rooms []string, addrs []ma.Multiaddr) error {
	var errs []error
	for _, name := range rooms {
		val, err := p.encode(name, addrs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := p.n.dht.PutValue(ctx, room.Key(name), val); err != nil {
			errs = append(errs, fmt.Errorf("publish room %q in the mesh: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// encode signs and encodes the record of name, dropping the least useful
// addresses (they come sorted) if the record would be too large.
func (p *Publisher) encode(name string, addrs []ma.Multiaddr) ([]byte, error) {
	for {
		rec, err := room.NewRecord(p.n.priv, name, addrs, p.ttl)
		if err != nil {
			return nil, fmt.Errorf("publish room %q: %w", name, err)
		}
		val, err := rec.Encode()
		if err == nil {
			return val, nil
		}
		if !errors.Is(err, room.ErrBadRecord) || len(addrs) == 0 {
			return nil, fmt.Errorf("publish room %q: %w", name, err)
		}
		addrs = addrs[:len(addrs)-1]
	}
}

// run republishes until ctx ends.
func (p *Publisher) run(ctx context.Context, published []ma.Multiaddr) {
	defer close(p.done)
	interval := p.ttl / 3

	sub, err := p.n.host.EventBus().Subscribe(new(event.EvtLocalAddressesUpdated))
	var addrEvents <-chan any
	if err != nil {
		p.n.log.Warn("cannot watch address changes; republishing on a timer only", "error", err)
	} else {
		defer sub.Close()
		addrEvents = sub.Out()
	}

	timer := time.NewTimer(interval)
	defer timer.Stop()
	var addrChanged <-chan time.Time // fires addrChangeDelay after a burst of events starts
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-addrEvents:
			if !ok { // the host is closing
				addrEvents = nil
				continue
			}
			if addrChanged == nil {
				addrChanged = time.After(addrChangeDelay)
			}
			continue
		case <-addrChanged:
			addrChanged = nil
			if slices.EqualFunc(published, p.n.publishAddrs(), ma.Multiaddr.Equal) {
				continue
			}
		case <-timer.C:
		}

		addrs := p.n.publishAddrs()
		// Half the ttl, not the interval: a loaded host (or a slow DHT)
		// gets the longest wait that still leaves a retry before the
		// records expire.
		putCtx, cancel := context.WithTimeout(ctx, p.ttl/2)
		rooms := p.Rooms()
		err := p.publish(putCtx, rooms, addrs)
		cancel()
		next := interval
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// Retry well before the records expire.
			next = max(interval/4, 500*time.Millisecond)
			p.n.log.Warn("republishing rooms failed; retrying", "rooms", rooms, "in", next, "error", err)
		} else {
			published = addrs
			p.n.log.Debug("rooms republished", "rooms", rooms, "addrs", addrs)
		}
		timer.Reset(next)
	}
}

// Rooms returns the canonical names of the published rooms.
func (p *Publisher) Rooms() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.rooms)
}

// Close stops republishing and waits for the republishing goroutine. The
// records stay in the DHT until they expire. Close is idempotent.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		<-p.done
	})
	return nil
}

// publishAddrs returns the host's addresses in the order a bridge should
// try them, at most room.MaxAddrs: public, then relayed, then private, then
// loopback (kept: in the demo every role runs on 127.0.0.1).
func (n *Host) publishAddrs() []ma.Multiaddr {
	addrs := slices.Clone(n.host.Addrs())
	slices.SortStableFunc(addrs, func(a, b ma.Multiaddr) int { return cmp.Compare(addrRank(a), addrRank(b)) })
	if len(addrs) > room.MaxAddrs {
		addrs = addrs[:room.MaxAddrs]
	}
	return addrs
}

func addrRank(a ma.Multiaddr) int {
	switch {
	case isRelayed(a):
		return 1
	case manet.IsPublicAddr(a):
		return 0
	case manet.IsIPLoopback(a): // before IsPrivateAddr, which includes loopback
		return 3
	case manet.IsPrivateAddr(a):
		return 2
	default:
		return 4
	}
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
