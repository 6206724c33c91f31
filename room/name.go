package room

import (
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxLabelLen is the longest room label (the part before any "@"), as in ERS.
const MaxLabelLen = 128

// maxOwnerLen bounds the peer ID part of an owned room before it is decoded,
// so that hostile input cannot make us decode arbitrarily long strings. An
// Ed25519 peer ID is 52 characters in base58 and 62 as a base36 CID; 128
// leaves room for other multibase spellings.
const maxOwnerLen = 128

// Name is a parsed, canonical room name. The zero value is not a valid name;
// get one from ParseName.
type Name struct {
	label string
	owner peer.ID // "" for an open room
}

// ParseName checks s and returns it as a Name. A name is a label of 1 to
// MaxLabelLen characters from A-Z a-z 0-9 . _ ~ - (the URL "unreserved"
// characters, so a name never needs escaping in a URL or a DHT key),
// optionally followed by "@" and the peer ID of the device that owns the room.
//
// The owner must be an Ed25519 peer ID: its public key is embedded in the ID,
// which is what lets anyone (a DHT node, a browser) check a signature from the
// owner with no lookup and no trust in a third party. Any spelling of the peer
// ID that libp2p accepts is taken; String returns the canonical one, so two
// spellings of the same owned room reach the same DHT key.
func ParseName(s string) (Name, error) {
	label, ownerStr, owned := strings.Cut(s, "@")
	if err := checkLabel(label); err != nil {
		return Name{}, fmt.Errorf("%w %q: %w", ErrBadName, truncate(s), err)
	}
	if !owned {
		return Name{label: label}, nil
	}
	owner, err := parseOwner(ownerStr)
	if err != nil {
		return Name{}, fmt.Errorf("%w %q: %w", ErrBadName, truncate(s), err)
	}
	return Name{label: label, owner: owner}, nil
}

func checkLabel(label string) error {
	if label == "" {
		return fmt.Errorf("the room name is empty")
	}
	if len(label) > MaxLabelLen {
		return fmt.Errorf("the room name is %d characters long, at most %d are allowed", len(label), MaxLabelLen)
	}
	for i := 0; i < len(label); i++ {
		if !isNameChar(label[i]) {
			return fmt.Errorf("character %q at position %d is not allowed (only A-Z a-z 0-9 . _ ~ -)", rune(label[i]), i+1)
		}
	}
	return nil
}

func isNameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '.', c == '_', c == '~', c == '-':
		return true
	}
	return false
}

func parseOwner(s string) (peer.ID, error) {
	if s == "" {
		return "", fmt.Errorf("the owner peer ID after @ is empty")
	}
	if len(s) > maxOwnerLen {
		return "", fmt.Errorf("the owner peer ID after @ is too long")
	}
	id, err := peer.Decode(s)
	if err != nil {
		return "", fmt.Errorf("the owner after @ is not a peer ID: %w", err)
	}
	if _, err := ed25519Key(id); err != nil {
		return "", fmt.Errorf("the owner after @ cannot own a room: %w", err)
	}
	return id, nil
}

// ed25519Key returns the Ed25519 public key embedded in id. Only such IDs can
// publish records: records carry no key, and an ID that is a hash of its key
// (RSA) would force a second lookup and an extra trust step.
func ed25519Key(id peer.ID) (crypto.PubKey, error) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("peer ID %s does not embed its public key: %w", truncate(id.String()), err)
	}
	if pk.Type() != cryptopb.KeyType_Ed25519 {
		return nil, fmt.Errorf("peer ID %s has a %s key, only Ed25519 is supported", truncate(id.String()), pk.Type())
	}
	// Reject non-canonical encodings of the same key, so that one key maps
	// to exactly one peer ID (and one owned-room DHT key).
	if canon, err := peer.IDFromPublicKey(pk); err != nil || canon != id {
		return nil, fmt.Errorf("peer ID %s is not the canonical ID of its key", truncate(id.String()))
	}
	return pk, nil
}

// String returns the canonical form of the name: the label, and for an owned
// room "@" and the owner's peer ID in its canonical (base58) spelling.
func (n Name) String() string {
	if n.owner == "" {
		return n.label
	}
	return n.label + "@" + n.owner.String()
}

// Label returns the name without its owner part: what the user typed before
// any "@".
func (n Name) Label() string { return n.label }

// Owner returns the peer that owns the room and true, or false for an open
// room that anyone may publish.
func (n Name) Owner() (peer.ID, bool) {
	return n.owner, n.owner != ""
}

// truncate keeps error messages readable when they quote hostile input.
func truncate(s string) string {
	const maxQuoted = 200
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}
