package room

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func TestValidate(t *testing.T) {
	v := Validator{MaxTTL: 5 * time.Minute, Now: func() time.Time { return testNow }}
	priv, id := testutil.Key(t)
	squatter, _ := testutil.Key(t)
	base := func() *Record {
		return &Record{
			Room:    "frontdoor",
			Addrs:   []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")},
			Seq:     uint64(testNow.UnixNano()),
			Expires: testNow.Add(time.Minute),
		}
	}
	encode := func(r *Record) []byte {
		t.Helper()
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sign := func(r *Record, k crypto.PrivKey) *Record {
		t.Helper()
		if err := r.Sign(k); err != nil {
			t.Fatal(err)
		}
		return r
	}

	good := sign(base(), priv)
	if err := v.Validate(Key("frontdoor"), encode(good)); err != nil {
		t.Fatalf("valid record rejected: %v", err)
	}
	owned := base()
	owned.Room = "frontdoor@" + id.String()
	sign(owned, priv)
	if err := v.Validate(Key(owned.Room), encode(owned)); err != nil {
		t.Fatalf("owned room from its owner rejected: %v", err)
	}

	type tc struct {
		name string
		key  string
		val  []byte
		want error
	}
	var cases []tc
	add := func(name, key string, r *Record, want error) {
		cases = append(cases, tc{name, key, encode(r), want})
	}

	// Tampering with any signed field after signing breaks the signature.
	tampered := func(edit func(*Record)) *Record {
		r := sign(base(), priv)
		edit(r)
		return r
	}
	add("tampered addrs", Key("frontdoor"), tampered(func(r *Record) {
		r.Addrs = []ma.Multiaddr{ma.StringCast("/ip4/203.0.113.9/tcp/4001")}
	}), ErrBadSignature)
	add("tampered seq", Key("frontdoor"), tampered(func(r *Record) { r.Seq++ }), ErrBadSignature)
	add("tampered expiry", Key("frontdoor"), tampered(func(r *Record) { r.Expires = r.Expires.Add(time.Second) }), ErrBadSignature)
	add("tampered room", Key("backdoor"), tampered(func(r *Record) { r.Room = "backdoor" }), ErrBadSignature)
	add("tampered peer", Key("frontdoor"), tampered(func(r *Record) {
		_, other := testutil.Key(t)
		r.Peer = other
	}), ErrBadSignature)
	add("tampered signature", Key("frontdoor"), tampered(func(r *Record) { r.Signature[0] ^= 1 }), ErrBadSignature)

	add("wrong key", Key("backdoor"), sign(base(), priv), ErrWrongKey)
	add("namespace only", "/ersroom/frontdoor", sign(base(), priv), ErrWrongKey)

	expired := base()
	expired.Expires = testNow
	add("expired", Key("frontdoor"), sign(expired, priv), ErrExpired)

	far := base()
	far.Expires = testNow.Add(v.MaxTTL + MaxClockSkew + time.Millisecond)
	add("expiry too far", Key("frontdoor"), sign(far, priv), ErrExpiryTooFar)

	// Within the clock skew allowance: accepted.
	skewed := base()
	skewed.Expires = testNow.Add(v.MaxTTL + MaxClockSkew)
	if err := v.Validate(Key("frontdoor"), encode(sign(skewed, priv))); err != nil {
		t.Errorf("record within clock skew rejected: %v", err)
	}

	squat := base()
	squat.Room = "frontdoor@" + id.String()
	add("squatter on owned room", Key(squat.Room), sign(squat, squatter), ErrNotOwner)

	hugeSeq := base()
	hugeSeq.Seq = math.MaxUint64
	add("sequence beyond expiry", Key("frontdoor"), sign(hugeSeq, priv), ErrBadRecord)

	for _, c := range cases {
		if err := v.Validate(c.key, c.val); !errors.Is(err, c.want) {
			t.Errorf("%s: Validate = %v, want %v", c.name, err, c.want)
		}
	}
	if err := v.Validate(Key("frontdoor"), []byte("garbage")); !errors.Is(err, ErrBadRecord) {
		t.Errorf("garbage: %v", err)
	}

	// The default MaxTTL applies when unset.
	dv := Validator{Now: v.Now}
	far2 := base()
	far2.Expires = testNow.Add(DefaultMaxTTL + MaxClockSkew + time.Second)
	if err := dv.Validate(Key("frontdoor"), encode(sign(far2, priv))); !errors.Is(err, ErrExpiryTooFar) {
		t.Errorf("default MaxTTL not applied: %v", err)
	}
}

func TestValidatorInNamespace(t *testing.T) {
	// As kad-dht uses it: namespaced by Namespace.
	v := Validator{}
	nv := record.NamespacedValidator{Namespace: v}
	priv, _ := testutil.Key(t)
	r, err := NewRecord(priv, "frontdoor", nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := r.Encode()
	if err := nv.Validate(Key("frontdoor"), b); err != nil {
		t.Fatal(err)
	}
	if i, err := nv.Select(Key("frontdoor"), [][]byte{b}); err != nil || i != 0 {
		t.Fatalf("Select = %d, %v", i, err)
	}
}

func TestSelect(t *testing.T) {
	v := Validator{Now: func() time.Time { return testNow }}
	priv, _ := testutil.Key(t)
	key := Key("frontdoor")
	mk := func(seq uint64, expires time.Duration, addr string) []byte {
		t.Helper()
		r := &Record{
			Room:    "frontdoor",
			Addrs:   []ma.Multiaddr{ma.StringCast(addr)},
			Seq:     seq,
			Expires: testNow.Add(expires),
		}
		if err := r.Sign(priv); err != nil {
			t.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := mk(10, 5*time.Minute, "/ip4/127.0.0.1/tcp/1")
	newer := mk(20, time.Minute, "/ip4/127.0.0.1/tcp/1")
	longer := mk(20, 2*time.Minute, "/ip4/127.0.0.1/tcp/1")
	tieA := mk(30, time.Minute, "/ip4/127.0.0.1/tcp/1")
	tieB := mk(30, time.Minute, "/ip4/127.0.0.1/tcp/2")
	smallest := tieA
	if string(tieB) < string(tieA) {
		smallest = tieB
	}
	expiredHigh := mk(99, 0, "/ip4/127.0.0.1/tcp/1") // expired: never wins
	forged := append([]byte{}, mk(98, time.Minute, "/ip4/127.0.0.1/tcp/1")...)
	forged[len(forged)-4] ^= 1 // breaks the base64 signature

	check := func(name string, want []byte, values ...[]byte) {
		t.Helper()
		// The same set in any order gives the same winner.
		for range 20 {
			rand.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
			i, err := v.Select(key, values)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if string(values[i]) != string(want) {
				t.Fatalf("%s: selected %s", name, values[i])
			}
		}
	}
	check("highest seq", newer, old, newer)
	check("then latest expiry", longer, newer, longer, old)
	check("then smallest bytes", smallest, tieA, tieB, newer)
	check("invalid never wins", longer, expiredHigh, forged, longer, []byte("junk"))

	if _, err := v.Select(key, [][]byte{expiredHigh, forged}); err == nil {
		t.Fatal("Select chose among invalid records only")
	}
}
