package mesh

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ersmesh/ersmesh/room"
)

// Record returns a fresh signed record of one of p's rooms, as the DHT
// gets it: what a device hands a bridge directly (EMS's ersip/ersport)
// so that the bridge need not look the room up.
func (p *Publisher) Record(roomName string) ([]byte, error) {
	name, err := room.ParseName(roomName)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(p.Rooms(), name.String()) {
		return nil, fmt.Errorf("room %q is not published by this node", name)
	}
	return p.encode(name.String(), p.n.publishAddrs())
}

// ErrStale is returned by Learn for a record older than one the resolver
// holds for the room.
var ErrStale = errors.New("stale room record")

// Learn takes a room record handed over directly by its device, checks
// it exactly as a DHT node checks a record put to it (signature, key,
// expiry, owner), and serves lookups of the room from it until it expires
// or CacheTTL ends. It returns the room's name. Nothing is put in the DHT:
// the device publishes there itself.
func (r *Resolver) Learn(val []byte) (string, error) {
	rec, err := room.DecodeRecord(val)
	if err != nil {
		return "", err
	}
	if err := r.n.validator.ValidateRecord(room.Key(rec.Room), rec); err != nil {
		return "", err
	}
	now := time.Now()
	r.mu.Lock()
	_, kept := r.store(rec.Room, r.entryOf(rec, val, now), now)
	r.mu.Unlock()
	if kept {
		return "", fmt.Errorf("%w: a newer record of room %q is known", ErrStale, rec.Room)
	}
	r.dialable(rec, now)
	return rec.Room, nil
}
