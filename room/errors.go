package room

import "errors"

// Sentinel errors. Functions in this package wrap them with the precise
// reason, so callers branch with errors.Is and users read the wrapped text.
var (
	// ErrBadName means a string is not a valid room name.
	ErrBadName = errors.New("invalid room name")
	// ErrBadRecord means a room record cannot be decoded or is malformed
	// (too large, too many addresses, missing fields).
	ErrBadRecord = errors.New("invalid room record")
	// ErrWrongKey means a record was stored under a DHT key that is not the
	// key of the room it names: a record for one room replayed under another.
	ErrWrongKey = errors.New("room record stored under the wrong key")
	// ErrBadSignature means a record's signature does not verify against
	// the public key embedded in its peer ID.
	ErrBadSignature = errors.New("room record signature does not verify")
	// ErrExpired means a record's expiry has passed.
	ErrExpired = errors.New("room record expired")
	// ErrExpiryTooFar means a record claims to stay valid for longer than
	// the mesh allows, which would keep an offline device in lookups.
	ErrExpiryTooFar = errors.New("room record expiry too far in the future")
	// ErrNotOwner means an owned room's record was published by a peer
	// other than the one named in the room.
	ErrNotOwner = errors.New("room record not published by the room's owner")
)
