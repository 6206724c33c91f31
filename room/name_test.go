package room

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

func TestParseName(t *testing.T) {
	_, id := testutil.Key(t)
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpID, _ := peer.IDFromPrivateKey(secp)
	// A sha256-hashed peer ID (as RSA keys get) does not embed its key.
	hashedID := "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"

	good := []struct{ in, want string }{
		{"frontdoor", "frontdoor"},
		{"A-z_0.9~", "A-z_0.9~"},
		{strings.Repeat("x", MaxLabelLen), strings.Repeat("x", MaxLabelLen)},
		{"cam@" + id.String(), "cam@" + id.String()},
		// Another spelling of the same peer ID maps to the canonical one.
		{"cam@" + peer.ToCid(id).String(), "cam@" + id.String()},
	}
	for _, tc := range good {
		n, err := ParseName(tc.in)
		if err != nil {
			t.Errorf("ParseName(%q): %v", tc.in, err)
			continue
		}
		if n.String() != tc.want {
			t.Errorf("ParseName(%q).String() = %q, want %q", tc.in, n.String(), tc.want)
		}
	}

	n, _ := ParseName("cam@" + id.String())
	if owner, ok := n.Owner(); !ok || owner != id {
		t.Errorf("Owner() = %s, %v; want %s, true", owner, ok, id)
	}
	if n.Label() != "cam" {
		t.Errorf("Label() = %q", n.Label())
	}
	n, _ = ParseName("cam")
	if _, ok := n.Owner(); ok {
		t.Error("an open room has an owner")
	}

	bad := []string{
		"",
		strings.Repeat("x", MaxLabelLen+1),
		"front door",
		"front/door",
		"fr%C3%B6nt",
		"frönt",
		"@" + id.String(),
		"cam@",
		"cam@notapeer",
		"cam@" + id.String() + "@x",
		"cam@" + secpID.String(),
		"cam@" + hashedID,
		"cam@" + strings.Repeat("1", 500),
	}
	for _, in := range bad {
		if _, err := ParseName(in); !errors.Is(err, ErrBadName) {
			t.Errorf("ParseName(%q) = %v, want ErrBadName", in, err)
		}
	}
}

func FuzzParseName(f *testing.F) {
	_, id := testutil.Key(f)
	for _, s := range []string{
		"frontdoor", "", "a", "a b", "x@y", "cam@" + id.String(),
		"cam@" + peer.ToCid(id).String(), strings.Repeat("z", 129), "~._-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v does not wrap ErrBadName", err)
			}
			return
		}
		// The canonical form is a fixed point, and keeps label and owner.
		again, err := ParseName(n.String())
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", n.String(), err)
		}
		if again != n || again.String() != n.String() {
			t.Fatalf("canonical form %q parses to %q", n.String(), again.String())
		}
		if l := len(n.Label()); l == 0 || l > MaxLabelLen {
			t.Fatalf("label of %d bytes accepted", l)
		}
	})
}
