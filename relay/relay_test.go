package relay

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node/media/ems"
)

// fakeStream makes signed units as a device's stream does: a MOOV, then
// groups, a keyframe every gop groups.
type fakeStream struct {
	t       testing.TB
	s       *Signer
	seq     uint64
	moovSeq uint64
	n       int
}

func newFakeStream(t testing.TB, key crypto.PrivKey) *fakeStream {
	return &fakeStream{t: t, s: NewSigner(key, "cam", Epoch{1, 2, 3})}
}

func (f *fakeStream) unit(flags byte, covered []byte) []byte {
	f.t.Helper()
	f.seq++
	if flags&FlagMoov != 0 {
		f.moovSeq = f.seq
	}
	sig, err := f.s.Sign(flags, f.seq, f.moovSeq, covered)
	if err != nil {
		f.t.Fatal(err)
	}
	return append(sig, covered...)
}

func (f *fakeStream) moov() []byte {
	rec, err := ems.AppendMoov(nil, [4]byte{0xF1, 0x42, 0xE0, 0x1F}, []byte("init segment"))
	if err != nil {
		f.t.Fatal(err)
	}
	return f.unit(FlagMoov, rec)
}

func (f *fakeStream) group(key bool) []byte {
	f.n++
	seg := append([]byte{0, 0, 0, 16, 'm', 'o', 'o', 'f', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 'm', 'd', 'a', 't'}, byte(f.n), 1, 2, 3, 4, 5, 6, 7, 8)
	rec, err := ems.AppendSegment(nil, seg, 16, 4)
	if err != nil {
		f.t.Fatal(err)
	}
	flags := byte(0)
	if key {
		flags = FlagKey
	}
	return f.unit(flags, rec)
}

// feedSplit feeds b to r in random pieces and collects the units.
func feedSplit(t testing.TB, r *Reader, b []byte, rnd *rand.Rand) ([]Unit, error) {
	var units []Unit
	for len(b) > 0 {
		n := min(len(b), 1+rnd.IntN(40))
		if err := r.Feed(b[:n], func(u Unit) error { units = append(units, u); return nil }); err != nil {
			return units, err
		}
		b = b[n:]
	}
	return units, nil
}

func TestSignedStreamVerifies(t *testing.T) {
	key, id := testutil.Key(t)
	f := newFakeStream(t, key)
	var wire [][]byte
	wire = append(wire, f.moov(), f.group(true))
	for i := 0; i < 5; i++ {
		wire = append(wire, f.group(false))
	}
	wire = append(wire, f.group(true))
	rnd := rand.New(rand.NewPCG(1, 2))
	var r Reader
	units, err := feedSplit(t, &r, bytes.Join(wire, nil), rnd)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != len(wire) {
		t.Fatalf("got %d units, want %d", len(units), len(wire))
	}
	v, err := NewVerifier(id, "cam")
	if err != nil {
		t.Fatal(err)
	}
	l := v.NewLink()
	for i, u := range units {
		if !bytes.Equal(u.Raw, wire[i]) {
			t.Fatalf("unit %d is not the bytes sent", i)
		}
		vd, err := l.Check(u)
		if err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
		if vd.Init != (i == 0) || vd.Append != (i > 0) {
			t.Fatalf("unit %d: verdict %+v", i, vd)
		}
	}
	// A second link (a new parent) starting with the same MOOV and the
	// last GOP: nothing is appended twice, nothing initialised twice.
	l2 := v.NewLink()
	for _, b := range [][]byte{wire[0], wire[len(wire)-1]} {
		var u []Unit
		var r2 Reader
		u, err := feedSplit(t, &r2, b, rnd)
		if err != nil || len(u) != 1 {
			t.Fatal(err)
		}
		if vd, err := l2.Check(u[0]); err != nil || vd.Init || vd.Append {
			t.Fatalf("re-attached: %+v, %v", vd, err)
		}
	}
	if v.Appended() != units[len(units)-1].Seq {
		t.Fatalf("appended %d", v.Appended())
	}
}

// TestTamperingDetected plays a relay that alters, drops, replays or
// forges units: every trick is caught with its problem code.
func TestTamperingDetected(t *testing.T) {
	key, id := testutil.Key(t)
	other, _ := testutil.Key(t)
	f := newFakeStream(t, key)
	moov, k1, p1, p2, k2 := f.moov(), f.group(true), f.group(false), f.group(false), f.group(true)
	forger := newFakeStream(t, other)
	forger.seq = f.seq
	forger.moovSeq = 1
	forged := forger.group(false)
	flipped := bytes.Clone(p1)
	flipped[len(flipped)-6] ^= 0x40
	// A SIG of another epoch (a recording from an earlier run).
	oldRun := newFakeStream(t, key)
	oldRun.s.epoch = Epoch{9}
	oldMoov := oldRun.moov()
	stripped := p1[SigRecordSize:]
	// A new MOOV (the camera changed resolution) and its keyframe.
	_, k3 := f.moov(), f.group(true)

	cases := map[string]struct {
		units [][]byte
		want  string
	}{
		"flipped byte":      {[][]byte{moov, k1, flipped}, ProblemHash},
		"dropped frame":     {[][]byte{moov, k1, p2}, ProblemGap},
		"replayed frame":    {[][]byte{moov, k1, p1, p2, p1}, ProblemReplay},
		"other key":         {[][]byte{moov, k1, p1, p2, forged}, ProblemSignature},
		"no SIG":            {[][]byte{moov, k1, stripped}, ProblemUnsigned},
		"starts mid GOP":    {[][]byte{p1}, ProblemGap},
		"other epoch":       {[][]byte{moov, k1, oldMoov}, ProblemEpoch},
		"new MOOV withheld": {[][]byte{moov, k1, k3}, ProblemInit},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v, _ := NewVerifier(id, "cam")
			l := v.NewLink()
			var r Reader
			var got error
			for _, b := range tc.units {
				err := r.Feed(b, func(u Unit) error { _, err := l.Check(u); return err })
				if err != nil {
					got = err
					break
				}
			}
			var p *Problem
			if !errors.As(got, &p) || p.Code != tc.want {
				t.Fatalf("got %v, want problem %q", got, tc.want)
			}
		})
	}
	// A gap up to a keyframe is what a slow link gets: legal.
	v, _ := NewVerifier(id, "cam")
	l := v.NewLink()
	var r Reader
	for _, b := range [][]byte{moov, k1, k2} {
		if err := r.Feed(b, func(u Unit) error { _, err := l.Check(u); return err }); err != nil {
			t.Fatalf("skip to a keyframe: %v", err)
		}
	}
	// The stream name is signed: units of "cam" do not verify as "door".
	v2, _ := NewVerifier(id, "door")
	var r2 Reader
	err := r2.Feed(moov, func(u Unit) error { _, err := v2.NewLink().Check(u); return err })
	if p := (*Problem)(nil); !errors.As(err, &p) || p.Code != ProblemSignature {
		t.Fatalf("another stream's unit: %v", err)
	}
}

func TestReaderLimits(t *testing.T) {
	for name, b := range map[string][]byte{
		"huge record":  {TypeSig, 0xff, 0xff, 0xff},
		"short SIG":    {TypeSig, 0, 0, 1, 1},
		"unknown type": {7, 0, 0, 0},
		"bad version":  append([]byte{TypeSig, 0, 0, SigPayloadSize, 2}, make([]byte, SigPayloadSize-1)...),
	} {
		var r Reader
		err := r.Feed(b, func(Unit) error { return nil })
		var p *Problem
		if !errors.As(err, &p) || p.Code != ProblemMalformed {
			t.Errorf("%s: got %v, want malformed", name, err)
		}
	}
}

func TestAssignmentSignatures(t *testing.T) {
	key, id := testutil.Key(t)
	_, other := testutil.Key(t)
	a := &Assign{Link: "l1", Parent: "r1", Depth: 2, Stream: "cam", Epoch: Epoch{1}.String(), Seq: 42,
		Fingerprint: "sha-256 AA:BB", Self: "sha-256 CC:DD"}
	if err := SignAssign(key, "demo", "nonce1", a); err != nil {
		t.Fatal(err)
	}
	b, _ := jsonMarshal(a)
	got, err := Parse[Assign](b)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAssign(id, "demo", "nonce1", got); err != nil {
		t.Fatal(err)
	}
	for name, check := range map[string]func() error{
		"other nonce":  func() error { return VerifyAssign(id, "demo", "nonce2", got) },
		"other device": func() error { return VerifyAssign(other, "demo", "nonce1", got) },
		"swapped parent fp": func() error {
			c := *got
			c.Fingerprint = "sha-256 EE:FF"
			return VerifyAssign(id, "demo", "nonce1", &c)
		},
	} {
		if err := check(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := &Child{Link: "l1", Depth: 2, Fingerprint: "sha-256 CC:DD"}
	if err := SignChild(key, "demo", "cam", "n", c); err != nil {
		t.Fatal(err)
	}
	if err := VerifyChild(id, "demo", "cam", "n", c); err != nil {
		t.Fatal(err)
	}
	if err := VerifyChild(id, "demo", "door", "n", c); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("another stream: %v", err)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, b := range map[string]string{
		"bad link":        `{"link":"a b","problem":"hash"}`,
		"unknown problem": `{"link":"a","problem":"boring"}`,
		"long detail":     `{"link":"a","problem":"hash","detail":"` + string(bytes.Repeat([]byte("x"), 300)) + `"}`,
		"not json":        `{`,
		"huge":            `"` + string(bytes.Repeat([]byte("x"), MaxPayload)) + `"`,
	} {
		if _, err := Parse[Report]([]byte(b)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Parse[Ready]([]byte(`{"maxChildren":9}`)); err == nil {
		t.Error("maxChildren 9 accepted")
	}
	if _, err := Parse[Signal]([]byte(`{"link":"a"}`)); err == nil {
		t.Error("empty relaySignal accepted")
	}
	if _, err := Parse[Signal]([]byte(`{"link":"a","description":{"type":"pranswer","sdp":"v=0"}}`)); err == nil {
		t.Error("pranswer accepted")
	}
}
