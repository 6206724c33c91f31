package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/ersmesh/ersmesh/internal/keylimit"
	"github.com/ersmesh/ersmesh/internal/ratelog"
	"github.com/ersmesh/ersmesh/room"
)

// Record quotas (Config.MaxRecordsPerPeer, MaxRecords). A DHT server stores
// records for strangers: kad-dht keeps one record per key but no bound on
// keys, so one peer publishing a million room names would have every server
// near those keys hold a million records. A room record names its publisher
// (signed), so a server can count per publisher.
//
// Peer IDs are free, so the per-publisher quota alone does not bound memory;
// the total does (at most MaxRecords of at most room.MaxRecordSize bytes).
// Records live minutes (Config.MaxRecordTTL) and their slots free up when
// the DHT's sweep drops them, so a flood must be kept up to keep slots.
const (
	DefaultMaxRecordsPerPeer = 64
	DefaultMaxRecords        = 20000
)

// ErrRecordQuota is returned to a peer whose record this node will not
// store: its publisher holds too many, or the node is full.
var ErrRecordQuota = errors.New("room record quota exceeded")

// RecordStats describes what a node's DHT value store holds and refused.
type RecordStats struct {
	Records    int // stored now
	Publishers int // distinct publishers of those
	// RefusedPerPeer counts records refused because their publisher held
	// MaxRecordsPerPeer already; RefusedFull because the node held
	// MaxRecords.
	RefusedPerPeer, RefusedFull uint64
}

// quotaStore wraps the DHT's value datastore. kad-dht validates a record
// (room.Validator) before it calls Put, so every value here is a room
// record whose publisher is known and proven.
type quotaStore struct {
	ds.Batching
	perPeer, total int
	log            *ratelog.Logger

	mu sync.Mutex // guards everything below; held across the inner Put so counts match the store
	// owner maps each stored key to its publisher; pubs holds one hold per
	// record under its publisher, capped per publisher (but for this node
	// itself, bounded only by the total).
	owner   map[ds.Key]peer.ID
	pubs    *keylimit.Limiter[peer.ID]
	refPeer uint64
	refFull uint64
}

func newQuotaStore(inner ds.Batching, self peer.ID, perPeer, total int, log *slog.Logger) *quotaStore {
	if perPeer <= 0 {
		perPeer = DefaultMaxRecordsPerPeer
	}
	if total <= 0 {
		total = DefaultMaxRecords
	}
	return &quotaStore{Batching: inner, perPeer: perPeer, total: total,
		// A flood is told once every few seconds, not once per record.
		log:   ratelog.New(log, 10*time.Second, 1),
		owner: make(map[ds.Key]peer.ID),
		pubs: keylimit.New(keylimit.Config[peer.ID]{PerKey: perPeer,
			Exempt:  func(p peer.ID) bool { return p == self },
			MaxKeys: total + 1}), // every key holds a record
	}
}

func (q *quotaStore) Put(ctx context.Context, key ds.Key, value []byte) error {
	var rec recpb.Record
	if err := proto.Unmarshal(value, &rec); err != nil {
		return fmt.Errorf("store DHT record: %w", err)
	}
	r, err := room.DecodeRecord(rec.GetValue())
	if err != nil {
		// Only room records pass our validator; anything else is a bug.
		return fmt.Errorf("store DHT record: %w", err)
	}
	pub := r.Peer

	q.mu.Lock()
	defer q.mu.Unlock()
	prev, had := q.owner[key]
	if !had && len(q.owner) >= q.total {
		q.refFull++
		q.log.Warn("refusing a room record: node holds its maximum of room records", "publisher", pub, "limit", q.total, "refused_full", q.refFull)
		return fmt.Errorf("%w: this node holds %d room records, its maximum", ErrRecordQuota, q.total)
	}
	// A record replacing one of the same publisher takes no new slot; one
	// replacing another publisher's moves the slot to pub.
	if !had || prev != pub {
		if err := q.pubs.Acquire(pub); err != nil {
			q.refPeer++
			q.log.Warn("refusing a room record: publisher holds its maximum of room records here", "publisher", pub, "limit", q.perPeer, "refused_per_peer", q.refPeer)
			return fmt.Errorf("%w: publisher %s holds %d room records on this node, its maximum", ErrRecordQuota, pub, q.perPeer)
		}
	}
	if err := q.Batching.Put(ctx, key, value); err != nil {
		if !had || prev != pub {
			q.pubs.Release(pub)
		}
		return err
	}
	if had && prev != pub {
		q.pubs.Release(prev)
	}
	q.owner[key] = pub
	return nil
}

func (q *quotaStore) Delete(ctx context.Context, key ds.Key) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.Batching.Delete(ctx, key); err != nil {
		return err
	}
	if prev, had := q.owner[key]; had {
		delete(q.owner, key)
		q.pubs.Release(prev)
	}
	return nil
}

// Batch routes a batch's writes through Put and Delete, so they are counted
// too (kad-dht's value store writes one record at a time today).
func (q *quotaStore) Batch(ctx context.Context) (ds.Batch, error) {
	return ds.NewBasicBatch(q), nil
}

func (q *quotaStore) stats() RecordStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return RecordStats{Records: len(q.owner), Publishers: q.pubs.Len(), RefusedPerPeer: q.refPeer, RefusedFull: q.refFull}
}
