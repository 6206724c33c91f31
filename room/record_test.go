package room

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/internal/testutil"
)

func testAddrs(t testing.TB) []ma.Multiaddr {
	t.Helper()
	var out []ma.Multiaddr
	for _, s := range []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.0.2.7/udp/4001/quic-v1", "/ip6/::1/tcp/4001"} {
		out = append(out, ma.StringCast(s))
	}
	return out
}

func TestRecordRoundTrip(t *testing.T) {
	priv, id := testutil.Key(t)
	r, err := NewRecord(priv, "frontdoor", testAddrs(t), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.Peer != id || r.Room != "frontdoor" || r.Seq == 0 || len(r.Signature) == 0 {
		t.Fatalf("NewRecord filled %+v", r)
	}
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Room != r.Room || got.Peer != r.Peer || got.Seq != r.Seq || !got.Expires.Equal(r.Expires) ||
		!bytes.Equal(got.Signature, r.Signature) || len(got.Addrs) != len(r.Addrs) {
		t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", got, r)
	}
	for i := range got.Addrs {
		if !got.Addrs[i].Equal(r.Addrs[i]) {
			t.Fatalf("address %d: got %s want %s", i, got.Addrs[i], r.Addrs[i])
		}
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
	if info := got.AddrInfo(); info.ID != id || len(info.Addrs) != 3 {
		t.Fatalf("AddrInfo() = %v", info)
	}
}

func TestNewRecordCanonicalisesOwnedName(t *testing.T) {
	priv, id := testutil.Key(t)
	r, err := NewRecord(priv, "cam@"+peer.ToCid(id).String(), nil, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.Room != "cam@"+id.String() {
		t.Fatalf("room %q not canonical", r.Room)
	}
}

func TestSeqIncreases(t *testing.T) {
	now := time.Now()
	a := nextSeq(now)
	b := nextSeq(now) // same clock reading
	c := nextSeq(now.Add(-time.Hour))
	if !(a < b && b < c) {
		t.Fatalf("sequence not increasing: %d %d %d", a, b, c)
	}
}

func TestRecordLimits(t *testing.T) {
	priv, _ := testutil.Key(t)
	many := make([]ma.Multiaddr, MaxAddrs+1)
	for i := range many {
		many[i] = ma.StringCast("/ip4/127.0.0.1/tcp/1")
	}
	if _, err := NewRecord(priv, "x", many, time.Minute); !errors.Is(err, ErrBadRecord) {
		t.Errorf("%d addresses: %v, want ErrBadRecord", len(many), err)
	}
	if _, err := NewRecord(priv, "x", nil, 0); !errors.Is(err, ErrBadRecord) {
		t.Errorf("zero ttl: %v, want ErrBadRecord", err)
	}
	if _, err := NewRecord(priv, "bad name", nil, time.Minute); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v, want ErrBadName", err)
	}
	// 32 long DNS addresses do not fit in MaxRecordSize.
	long := make([]ma.Multiaddr, MaxAddrs)
	for i := range long {
		long[i] = ma.StringCast("/dns4/" + strings.Repeat("a", 250) + "/tcp/1")
	}
	r, err := NewRecord(priv, "x", long, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Encode(); !errors.Is(err, ErrBadRecord) {
		t.Errorf("oversized record encoded: %v", err)
	}
	if _, err := DecodeRecord(bytes.Repeat([]byte(" "), MaxRecordSize+1)); !errors.Is(err, ErrBadRecord) {
		t.Errorf("oversized input decoded: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	priv, _ := testutil.Key(t)
	r, err := NewRecord(priv, "frontdoor", testAddrs(t), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := r.Encode()
	cases := map[string][]byte{
		"empty":          nil,
		"not json":       []byte("hello"),
		"trailing data":  append(append([]byte{}, good...), []byte(" {}")...),
		"unknown field":  bytes.Replace(good, []byte(`{"room"`), []byte(`{"extra":1,"room"`), 1),
		"bad address":    bytes.Replace(good, []byte("/ip4/127.0.0.1/tcp/4001"), []byte("/ip4/999/tcp/1"), 1),
		"unsigned":       bytes.Replace(good, []byte(`"sig":"`), []byte(`"sig":"","x":"`), 1),
		"bad room":       bytes.Replace(good, []byte(`"frontdoor"`), []byte(`"front door"`), 1),
		"no expiry":      []byte(`{"room":"a","peer":"` + r.Peer.String() + `","addrs":[],"seq":1,"expires":0,"sig":"AAAA"}`),
		"not a peer":     bytes.Replace(good, []byte(r.Peer.String()), []byte("QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"), 1),
		"json null":      []byte("null"),
		"wrong type seq": bytes.Replace(good, []byte(`"seq":`), []byte(`"seq":"1",,`), 1),
	}
	for name, b := range cases {
		if _, err := DecodeRecord(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: DecodeRecord = %v, want ErrBadRecord", name, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	priv, id := testutil.Key(f)
	for _, room := range []string{"frontdoor", "cam@" + id.String()} {
		r, err := NewRecord(priv, room, testAddrs(f), time.Minute)
		if err != nil {
			f.Fatal(err)
		}
		b, err := r.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"room":"a","peer":"` + id.String() + `","addrs":["/ip4/1.2.3.4/tcp/1"],"seq":1,"expires":1,"sig":"AAAA"}`))
	f.Add([]byte("null"))
	v := Validator{}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error %v does not wrap ErrBadRecord", err)
			}
			return
		}
		// Whatever decodes re-encodes, within the limits, to a record
		// that decodes to the same thing and verifies the same way.
		enc, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded record does not re-encode: %v", err)
		}
		again, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again.Room != r.Room || again.Peer != r.Peer || again.Seq != r.Seq || !again.Expires.Equal(r.Expires) || len(again.Addrs) != len(r.Addrs) {
			t.Fatalf("re-encoding changed the record")
		}
		if (r.Verify() == nil) != (again.Verify() == nil) {
			t.Fatalf("re-encoding changed the signature check")
		}
		// The validator never panics on what decodes.
		_ = v.Validate(Key(r.Room), b)
	})
}
