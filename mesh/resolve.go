package mesh

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"slices"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/ersmesh/ersmesh/room"
)

// ErrNotFound is returned by Resolve when no valid record of the room is in
// the mesh: no device publishes it, or its device stopped and the record
// expired.
var ErrNotFound = errors.New("room not found in the mesh")

// Resolver defaults and bounds.
const (
	DefaultCacheTTL      = 30 * time.Second
	DefaultNegativeTTL   = time.Second
	DefaultLookupTimeout = 10 * time.Second

	// maxCacheEntries bounds the cache: browsers choose the room names a
	// bridge looks up, so a stranger could otherwise fill it with misses.
	maxCacheEntries = 4096
	// maxConcurrentLookups bounds the DHT queries one resolver runs at once,
	// for the same reason.
	maxConcurrentLookups = 64

	// searchQuorum and searchSettle end a lookup early: see search.
	searchQuorum = 3
	searchSettle = 200 * time.Millisecond
)

// ResolverOptions tunes a Resolver. The zero value gives the defaults.
type ResolverOptions struct {
	// CacheTTL is how long a found room is served from the cache; it is
	// capped by the record's own expiry. Zero means DefaultCacheTTL.
	CacheTTL time.Duration
	// NegativeTTL is how long "not found" is remembered, to absorb bursts
	// of lookups of a room that is not there. Zero means
	// DefaultNegativeTTL.
	NegativeTTL time.Duration
	// LookupTimeout bounds one DHT query. Zero means DefaultLookupTimeout.
	LookupTimeout time.Duration
	// QueryContext, if set, derives the context of each DHT query from the
	// one the Resolver made; benchmarks use it to register for kad-dht's
	// query events (routing.RegisterForQueryEvents) and count messages and
	// hops. It must not cancel the query early.
	QueryContext func(ctx context.Context, room string) context.Context
}

// Resolver finds the device serving a room, for bridges. Lookups are cached
// and concurrent lookups of the same room share one DHT query, so a cold
// lookup is the exception. Its goroutines belong to the Host; a Resolver
// needs no Close.
type Resolver struct {
	n    *Host
	opts ResolverOptions
	sem  chan struct{} // one token per running DHT query

	mu       sync.Mutex
	cache    map[string]cacheEntry // by canonical room name
	inflight map[string]*lookup
	stats    ResolverStats
	latency  *prometheus.HistogramVec // of DHT queries by result; nil until RegisterMetrics
}

// ResolverStats counts how Resolve calls were answered, for metrics.
type ResolverStats struct {
	Hits    uint64 // from the cache, found or not
	Shared  uint64 // by joining a DHT query already running
	Queries uint64 // DHT queries started
	// Results of finished DHT queries.
	Found, NotFound, Failed uint64
}

type cacheEntry struct {
	info    peer.AddrInfo
	err     error // ErrNotFound for a negative entry
	expires time.Time
	// The record info came from, kept (through Forget, and past expires)
	// until recExpires so that an older record of the room, still valid
	// and replayed by anyone, cannot replace it (see store).
	val        []byte
	recExpires time.Time
}

// lookup is one DHT query; done closes when info and err are set.
type lookup struct {
	done chan struct{}
	info peer.AddrInfo
	err  error
}

// NewResolver returns a Resolver that looks rooms up through n.
func NewResolver(n *Host, opts ResolverOptions) *Resolver {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = DefaultNegativeTTL
	}
	if opts.LookupTimeout <= 0 {
		opts.LookupTimeout = DefaultLookupTimeout
	}
	return &Resolver{
		n:        n,
		opts:     opts,
		sem:      make(chan struct{}, maxConcurrentLookups),
		cache:    make(map[string]cacheEntry),
		inflight: make(map[string]*lookup),
	}
}

// Resolve returns the device serving roomName and its addresses, which it
// also adds to the host's peerstore so that opening a stream to the device
// dials them. It returns an error wrapping room.ErrBadName for a malformed
// name and ErrNotFound when the mesh has no valid record of the room.
//
// ctx only bounds this caller's wait: the shared DHT query runs on (bounded
// by LookupTimeout) for the other callers and the cache.
func (r *Resolver) Resolve(ctx context.Context, roomName string) (peer.AddrInfo, error) {
	name, err := room.ParseName(roomName)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	key := name.String()

	r.mu.Lock()
	if e, ok := r.cache[key]; ok && time.Now().Before(e.expires) {
		r.stats.Hits++
		r.mu.Unlock()
		return cloneInfo(e.info), e.err
	}
	l, ok := r.inflight[key]
	if !ok {
		l = &lookup{done: make(chan struct{})}
		if !r.n.goTracked(func() { r.run(key, l) }) {
			r.mu.Unlock()
			return peer.AddrInfo{}, ErrClosed
		}
		r.inflight[key] = l
		r.stats.Queries++
	} else {
		r.stats.Shared++
	}
	r.mu.Unlock()

	select {
	case <-l.done:
		return cloneInfo(l.info), l.err
	case <-ctx.Done():
		return peer.AddrInfo{}, fmt.Errorf("look up room %q: %w", key, ctx.Err())
	}
}

// run performs the DHT query for key, publishes its result to waiters and to
// the cache, and leaves the inflight set.
func (r *Resolver) run(key string, l *lookup) {
	start := time.Now()
	rec, val, err := r.query(key)
	r.observe(time.Since(start), err)
	now := time.Now()
	var entry cacheEntry
	switch {
	case err == nil:
		entry = r.entryOf(rec, val, now)
	case errors.Is(err, ErrNotFound):
		entry = cacheEntry{err: err, expires: now.Add(r.opts.NegativeTTL)}
	}
	l.err = err

	r.mu.Lock()
	delete(r.inflight, key)
	kept := false
	if !entry.expires.IsZero() {
		// A newer record learned meanwhile (or before a Forget) wins
		// over what the DHT answered.
		entry, kept = r.store(key, entry, now)
	}
	l.info = entry.info
	r.mu.Unlock()
	if err == nil && !kept {
		r.dialable(rec, now)
	}
	if kept {
		r.n.log.Debug("room lookup answered from a newer record than the DHT's", "room", key)
	}
	close(l.done)
}

// entryOf is the cache entry of rec (encoded as val), found at now.
func (r *Resolver) entryOf(rec *room.Record, val []byte, now time.Time) cacheEntry {
	e := cacheEntry{info: rec.AddrInfo(), expires: now.Add(r.opts.CacheTTL), val: val, recExpires: rec.Expires}
	// Never serve a record past its own expiry: an offline device must
	// vanish from lookups when its record does.
	if rec.Expires.Before(e.expires) {
		e.expires = rec.Expires
	}
	return e
}

// dialable adds the addresses of a record the cache took to the
// peerstore, so that opening a stream to its device dials them.
func (r *Resolver) dialable(rec *room.Record, now time.Time) {
	if ttl := rec.Expires.Sub(now); ttl > 0 {
		r.n.host.Peerstore().AddAddrs(rec.Peer, rec.Addrs, ttl)
	}
}

// query gets and checks the best record of key from the DHT.
func (r *Resolver) query(key string) (*room.Record, []byte, error) {
	ctx, cancel := context.WithTimeout(r.n.ctx, r.opts.LookupTimeout)
	defer cancel()
	if r.opts.QueryContext != nil {
		ctx = r.opts.QueryContext(ctx, key)
	}
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-ctx.Done():
		return nil, nil, r.queryError(ctx, key, ctx.Err())
	}

	val, err := r.search(ctx, key)
	if err != nil {
		return nil, nil, r.queryError(ctx, key, err)
	}
	rec, err := room.DecodeRecord(val)
	if err != nil {
		return nil, nil, fmt.Errorf("look up room %q: %w", key, err)
	}
	// The DHT validated the record when it received it; check again now,
	// in case it expired while the query went on.
	if err := r.n.validator.ValidateRecord(room.Key(key), rec); err != nil {
		if errors.Is(err, room.ErrExpired) {
			return nil, nil, fmt.Errorf("%w: room %q (its record expired)", ErrNotFound, key)
		}
		return nil, nil, fmt.Errorf("look up room %q: %w", key, err)
	}
	return rec, val, nil
}

// search returns the best record of key the DHT offers within
// searchSettle of the first one, or once searchQuorum peers have answered.
//
// Waiting for the whole query (GetValue with kad-dht's default quorum of 0)
// means waiting for every one of the closest peers, and in a small mesh a
// device that just went away is one of them: dialling it over QUIC takes the
// full handshake timeout (5 s) before the query can end. Records are
// republished to every one of the closest peers, so the first answers
// already carry the current record; the settle time is for the rare case
// (an open room just taken over) where a fresher one is on its way.
func (r *Resolver) search(ctx context.Context, key string) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the query once we have our answer
	vals, err := r.n.dht.SearchValue(ctx, room.Key(key), dht.Quorum(searchQuorum))
	if err != nil {
		return nil, err
	}
	var best []byte
	var settle <-chan time.Time
	for {
		select {
		case v, ok := <-vals:
			if !ok {
				if best == nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					return nil, routing.ErrNotFound
				}
				return best, nil
			}
			best = v // SearchValue only sends values better than the last
			if settle == nil {
				settle = time.After(searchSettle)
			}
		case <-settle:
			return best, nil
		case <-ctx.Done():
			if best != nil && r.n.ctx.Err() == nil {
				return best, nil
			}
			return nil, ctx.Err()
		}
	}
}

func (r *Resolver) queryError(ctx context.Context, key string, err error) error {
	switch {
	case r.n.ctx.Err() != nil:
		return ErrClosed
	case errors.Is(err, routing.ErrNotFound):
		return fmt.Errorf("%w: room %q", ErrNotFound, key)
	case ctx.Err() != nil:
		return fmt.Errorf("%w: room %q (no record within %s)", ErrNotFound, key, r.opts.LookupTimeout)
	default:
		return fmt.Errorf("look up room %q: %w", key, err)
	}
}

// store adds an entry, making room first if the cache is full, and
// returns what the cache now holds for key. An entry from a record loses
// to the record cached before it when that one is still valid and better
// (a higher sequence number, as DHT nodes choose: room.Validator.Select),
// even if that one was forgotten or its cache time ran out: a record once
// superseded stays so, whoever replays it (at /ersmesh/register, or a DHT
// node that missed the update). kept reports that. Callers hold r.mu.
func (r *Resolver) store(key string, e cacheEntry, now time.Time) (_ cacheEntry, kept bool) {
	if old, ok := r.cache[key]; ok && old.val != nil && now.Before(old.recExpires) && e.val != nil {
		if i, err := r.n.validator.Select(room.Key(key), [][]byte{e.val, old.val}); err == nil && i == 1 {
			// Served again for a while: it is the best we know.
			old.expires = now.Add(r.opts.CacheTTL)
			if old.recExpires.Before(old.expires) {
				old.expires = old.recExpires
			}
			r.cache[key] = old
			return old, true
		}
	}
	if old, ok := r.cache[key]; ok && old.val != nil && now.Before(old.recExpires) && e.val == nil {
		// A lookup that found nothing: the room may be gone, but the
		// record still bars older ones.
		e.val, e.recExpires = old.val, old.recExpires
	}
	if len(r.cache) >= maxCacheEntries {
		for k, old := range r.cache {
			if !now.Before(old.expires) {
				delete(r.cache, k)
			}
		}
	}
	if len(r.cache) >= maxCacheEntries {
		for k := range r.cache { // an arbitrary victim: map order is random
			delete(r.cache, k)
			break
		}
	}
	r.cache[key] = e
	return e, false
}

// Stats returns the resolver's counters.
func (r *Resolver) Stats() ResolverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Forget drops roomName from the cache, so that the next Resolve asks the
// DHT again. A bridge calls it when the device it found is unreachable.
func (r *Resolver) Forget(roomName string) {
	key := roomName
	if name, err := room.ParseName(roomName); err == nil {
		key = name.String()
	}
	r.mu.Lock()
	if e, ok := r.cache[key]; ok {
		if e.val == nil {
			delete(r.cache, key)
		} else {
			// No longer served, but its record still bars older ones.
			e.expires = time.Time{}
			r.cache[key] = e
		}
	}
	r.mu.Unlock()
}

// cloneInfo gives each caller its own address slice: one answer is shared by
// every waiter and the cache.
func cloneInfo(info peer.AddrInfo) peer.AddrInfo {
	info.Addrs = slices.Clone(info.Addrs)
	return info
}
