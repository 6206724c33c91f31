package room

import (
	"bytes"
	"fmt"
	"time"

	record "github.com/libp2p/go-libp2p-record"
)

const (
	// DefaultMaxTTL is how far in the future a record may expire when
	// Validator.MaxTTL is unset: minutes, not the DHT's 48 hours, so an
	// offline camera vanishes from lookups quickly.
	DefaultMaxTTL = 10 * time.Minute
	// MaxClockSkew is how far ahead of the validating node's clock a
	// publisher's clock may run before its records are refused as expiring
	// too late. It does not extend the life of expired records.
	MaxClockSkew = 30 * time.Second
)

// Validator checks room records for the DHT (it implements
// record.Validator). Every DHT node runs it on every record it stores or
// receives, so a record that fails here is neither stored nor returned.
type Validator struct {
	// MaxTTL bounds how far in the future a record may expire (plus
	// MaxClockSkew). Zero means DefaultMaxTTL.
	MaxTTL time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

var _ record.Validator = Validator{}

func (v Validator) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v Validator) maxTTL() time.Duration {
	if v.MaxTTL > 0 {
		return v.MaxTTL
	}
	return DefaultMaxTTL
}

// Validate decodes value and checks it as the record stored under key: the
// key must be the room's, the room owner (if any) must be the publisher, the
// record must not be expired nor expire further than MaxTTL away, and the
// signature must verify against the publisher's peer ID.
func (v Validator) Validate(key string, value []byte) error {
	_, err := v.validate(key, value)
	return err
}

// ValidateRecord is Validate for a record that was already decoded.
func (v Validator) ValidateRecord(key string, r *Record) error {
	if key != Key(r.Room) {
		return fmt.Errorf("%w: the record is for room %q", ErrWrongKey, r.Room)
	}
	// DecodeRecord checked the name is canonical, so this cannot fail for
	// a decoded record; it can for one built by hand.
	name, err := ParseName(r.Room)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if owner, ok := name.Owner(); ok && owner != r.Peer {
		return fmt.Errorf("%w: room %q was published by %s", ErrNotOwner, r.Room, r.Peer)
	}
	now := v.now()
	if !now.Before(r.Expires) {
		return fmt.Errorf("%w: room %q expired at %s", ErrExpired, r.Room, r.Expires.UTC().Format(time.RFC3339))
	}
	if limit := now.Add(v.maxTTL() + MaxClockSkew); r.Expires.After(limit) {
		return fmt.Errorf("%w: room %q expires at %s, more than %s from now", ErrExpiryTooFar, r.Room, r.Expires.UTC().Format(time.RFC3339), v.maxTTL())
	}
	// A sequence number beyond the record's own expiry (in Unix
	// nanoseconds, which is what NewRecord uses) could only serve to win
	// every Select for the room for ever; bounding it means a squatter on
	// an open room is overtaken as soon as its record has expired.
	if r.Seq/uint64(time.Millisecond) > uint64(r.Expires.UnixMilli()) {
		return fmt.Errorf("%w: sequence number %d is beyond the record's expiry", ErrBadRecord, r.Seq)
	}
	return r.Verify()
}

func (v Validator) validate(key string, value []byte) (*Record, error) {
	r, err := DecodeRecord(value)
	if err != nil {
		return nil, err
	}
	if err := v.ValidateRecord(key, r); err != nil {
		return nil, err
	}
	return r, nil
}

// Select returns the index of the best valid record in values: the highest
// Seq, then the latest Expires, then the bytewise smallest encoding, so that
// every node picks the same record from the same set. Invalid records never
// win; if none is valid, Select returns an error.
func (v Validator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestRec *Record
	for i, val := range values {
		r, err := v.validate(key, val)
		if err != nil {
			continue
		}
		if best < 0 || better(r, val, bestRec, values[best]) {
			best, bestRec = i, r
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w: none of the %d records offered is valid", ErrBadRecord, len(values))
	}
	return best, nil
}

// better reports whether record a (encoded as aval) beats record b.
func better(a *Record, aval []byte, b *Record, bval []byte) bool {
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	if !a.Expires.Equal(b.Expires) {
		return a.Expires.After(b.Expires)
	}
	return bytes.Compare(aval, bval) < 0
}
