package web_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/internal/browsertest"
	"github.com/ersmesh/ersmesh/internal/testutil"
	"github.com/ersmesh/ersmesh/node/media/ems"
	"github.com/ersmesh/ersmesh/relay"
	"github.com/ersmesh/ersmesh/web"
)

// signedStream is a small signed fmp4 stream made by package relay, as the
// device makes it: units[i] is the unit of seq i+1 (SIG record and covered
// records).
type signedStream struct {
	id     peer.ID
	key    crypto.PrivKey
	epoch  relay.Epoch
	signer *relay.Signer
	units  [][]byte
}

// newSignedStream makes MOOV 1, then groups 2..n+1, the keyframes' at keys.
func newSignedStream(t *testing.T, stream string, n int, keys ...int) *signedStream {
	t.Helper()
	k, id := testutil.Key(t)
	s := &signedStream{id: id, key: k}
	if _, err := rand.Read(s.epoch[:]); err != nil {
		t.Fatal(err)
	}
	s.signer = relay.NewSigner(k, stream, s.epoch)
	hdr, err := ems.MoovHeader(ems.MaskVideo, []byte{0x67, 0x42, 0xc0, 0x1f})
	if err != nil {
		t.Fatal(err)
	}
	moov, err := ems.AppendMoov(nil, hdr, []byte("ftypmoov-init"))
	if err != nil {
		t.Fatal(err)
	}
	s.units = append(s.units, s.unit(t, relay.FlagMoov, 1, 1, moov))
	key := map[int]bool{}
	for _, k := range keys {
		key[k] = true
	}
	for seq := 2; seq < n+2; seq++ {
		var flags byte
		if key[seq] {
			flags = relay.FlagKey
		}
		s.units = append(s.units, s.unit(t, flags, uint64(seq), 1, s.group(t, seq)))
	}
	return s
}

func (s *signedStream) group(t *testing.T, seq int) []byte {
	t.Helper()
	moof := fmt.Appendf(nil, "moof-box-%d", seq)
	video := fmt.Appendf(nil, "video-%d-%s", seq, make([]byte, seq*37))
	seg := append(append(append([]byte{}, moof...), 0, 0, 0, 8, 'm', 'd', 'a', 't'), video...)
	g, err := ems.AppendSegment(nil, seg, len(moof), len(video))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (s *signedStream) unit(t *testing.T, flags byte, seq, moovSeq uint64, covered []byte) []byte {
	t.Helper()
	sig, err := s.signer.Sign(flags, seq, moovSeq, covered)
	if err != nil {
		t.Fatal(err)
	}
	return append(sig, covered...)
}

// of concatenates units by seq.
func (s *signedStream) of(seqs ...int) []byte {
	var b []byte
	for _, q := range seqs {
		b = append(b, s.units[q-1]...)
	}
	return b
}

// modulePage serves the player's modules and a blank page at /blank on
// 127.0.0.1, a secure context: WebCrypto is there as on HTTPS.
func modulePage(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.HandleFunc("/blank", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>modules</title>")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// linkJS feeds a list of byte strings (base64) to one SignedLink per entry
// of links, all on one verifier, in chunks of chunk bytes, and returns what
// each delivered ("<seq>" with i for init, a for append) and its problem.
const linkJS = `async (id, stream, epoch, links, chunk) => {
	const r = await import(new URL('/relay.js', location.href));
	const v = new r.StreamVerifier(id, stream);
	if (epoch) v.setEpoch(epoch);
	const out = [];
	for (const b64 of links) {
		const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
		const got = { units: [], problem: '' };
		const l = new r.SignedLink(v, {
			onUnit: (u, vd) => got.units.push(String(u.seq) + (vd.init ? 'i' : '') + (vd.append ? 'a' : '')),
			onProblem: (p) => { got.problem = p.code; },
		});
		const n = chunk || bytes.length || 1;
		for (let o = 0; o < bytes.length; o += n) l.feed(bytes.slice(o, o + n).buffer);
		await l.drained();
		out.push(got);
	}
	return { links: out, verified: v.verified, rejected: v.rejected };
}`

type linkResult struct {
	Links []struct {
		Units   []string
		Problem string
	}
	Verified, Rejected int
}

// TestRelayJSMatchesGo checks web/static/relay.js against package relay in
// Chromium: units the Go signer makes verify, in every chunking, and every
// alteration docs/relay.md §1 names is refused with its problem; SIG
// headers parse as relay.ParseHeader parses them; the device's signatures
// over relayAssign and relayChild verify.
func TestRelayJSMatchesGo(t *testing.T) {
	base := modulePage(t)
	b := browsertest.New(t)
	if err := browsertest.Navigate(b, base+"/blank"); err != nil {
		t.Fatal(err)
	}
	s := newSignedStream(t, "cam", 6, 2, 5) // MOOV 1; groups 2..7, keyframes 2 and 5

	run := func(t *testing.T, stream, epoch string, chunk int, links ...[]byte) linkResult {
		t.Helper()
		args, _ := json.Marshal([]any{s.id.String(), stream, epoch, links, chunk})
		res, err := browsertest.Eval[linkResult](b, `(`+linkJS+`)(...`+string(args)+`)`)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	want := func(t *testing.T, got linkResult, link int, units, problem string) {
		t.Helper()
		l := got.Links[link]
		if g := fmt.Sprint(l.Units); g != units || l.Problem != problem {
			t.Errorf("link %d: units %s, problem %q; want %s, %q", link, g, l.Problem, units, problem)
		}
	}

	t.Run("good", func(t *testing.T) {
		for _, chunk := range []int{0, 1, 3, 4, 7, 134, 1000, 16 << 10} {
			got := run(t, "cam", "", chunk, s.of(1, 2, 3, 4, 5, 6, 7))
			want(t, got, 0, "[1i 2a 3a 4a 5a 6a 7a]", "")
			if got.Verified != 7 || got.Rejected != 0 {
				t.Errorf("chunk %d: %d verified, %d rejected", chunk, got.Verified, got.Rejected)
			}
		}
	})
	t.Run("new parent repeats its GOP", func(t *testing.T) {
		got := run(t, "cam", s.epoch.String(), 0, s.of(1, 2, 3, 4, 5, 6), s.of(1, 5, 6, 7))
		want(t, got, 0, "[1i 2a 3a 4a 5a 6a]", "")
		want(t, got, 1, "[1 5 6 7a]", "") // verified, not appended again
	})
	t.Run("gap before a keyframe", func(t *testing.T) {
		want(t, run(t, "cam", "", 0, s.of(1, 2, 5, 6)), 0, "[1i 2a 5a 6a]", "")
	})

	flip := func(b []byte, at int) []byte {
		c := append([]byte{}, b...)
		c[at] ^= 0x40
		return c
	}
	u3 := s.units[2]
	sigAt := relay.SigRecordSize - 10
	other := relay.NewSigner(s.key, "other", s.epoch)
	otherSig, err := other.Sign(0, 3, 1, u3[relay.SigRecordSize:])
	if err != nil {
		t.Fatal(err)
	}
	var wrongEpoch relay.Epoch
	wrongEpoch[0] = 1
	s4, err := s.signer.Sign(0, 4, 3, s.group(t, 4)) // needs a MOOV 3 the link never had
	if err != nil {
		t.Fatal(err)
	}
	moovNoSig := s.units[0][relay.SigRecordSize:]
	groupAsMoov := append(append([]byte{}, s.units[0][:relay.SigRecordSize]...), s.units[1][relay.SigRecordSize:]...)
	badVersion := flip(s.units[0], 4)
	bad := []struct {
		name    string
		epoch   string
		bytes   []byte
		units   string
		problem string
	}{
		{"flipped media byte", "", cat(s.of(1, 2), flip(u3, len(u3)-10)), "[1i 2a]", "hash"},
		{"flipped hash", "", cat(s.of(1, 2), flip(u3, 4+40)), "[1i 2a]", "hash"},
		{"flipped signature", "", cat(s.of(1, 2), flip(u3, sigAt)), "[1i 2a]", "signature"},
		{"signed for another stream", "", cat(s.of(1, 2), otherSig, u3[relay.SigRecordSize:]), "[1i 2a]", "signature"},
		{"another epoch", wrongEpoch.String(), s.of(1, 2), "[]", "epoch"},
		{"replayed unit", "", s.of(1, 2, 3, 3), "[1i 2a 3a]", "replay"},
		{"dropped unit", "", s.of(1, 2, 4), "[1i 2a]", "gap"},
		{"starts without MOOV", "", s.of(2, 3), "[]", "gap"},
		{"group of another MOOV", "", cat(s.of(1, 2, 3), s4, s.group(t, 4)), "[1i 2a 3a]", "init"},
		{"MOOV without SIG", "", moovNoSig, "[]", "unsigned"},
		{"group without SIG", "", cat(s.of(1), s.units[1][relay.SigRecordSize:]), "[1i]", "unsigned"},
		{"SIG for a MOOV before a group", "", groupAsMoov, "[]", "unsigned"},
		{"SIG version 2", "", badVersion, "[]", "malformed"},
		{"unknown record", "", cat(s.of(1), []byte{7, 0, 0, 0}), "[1i]", "malformed"},
		{"oversized record", "", cat(s.of(1), []byte{relay.TypeSig, 0xff, 0xff, 0xff}), "[1i]", "malformed"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			for _, chunk := range []int{0, 5} {
				got := run(t, "cam", c.epoch, chunk, c.bytes)
				want(t, got, 0, c.units, c.problem)
				if got.Rejected != 1 {
					t.Errorf("chunk %d: %d rejected, want 1", chunk, got.Rejected)
				}
			}
		})
	}

	t.Run("SIG headers", func(t *testing.T) {
		// Mutations of a valid header: version, flags and the seq fields
		// take edge values; relay.js must accept exactly what Go accepts,
		// with the same numbers.
		rng := mrand.New(mrand.NewPCG(1, 2))
		base := s.units[2][4:relay.SigRecordSize]
		edges := []byte{0, 1, 2, 3, 4, 0x1f, 0x20, 0x7f, 0x80, 0xff}
		var cases [][]byte
		var wantOut []string
		for range 400 {
			p := append([]byte{}, base...)
			for range 1 + rng.IntN(3) {
				at := []int{0, 1, 18, 19, 20, 25, 26, 27, 33}[rng.IntN(9)]
				p[at] = edges[rng.IntN(len(edges))]
			}
			cases = append(cases, p)
			h, err := relay.ParseHeader(p)
			if err != nil {
				wantOut = append(wantOut, "err")
			} else {
				wantOut = append(wantOut, fmt.Sprintf("%d %d %d %s", h.Flags, h.Seq, h.MoovSeq, h.Epoch))
			}
		}
		arg, _ := json.Marshal(cases)
		got, err := browsertest.Eval[[]string](b, `(async () => {
			const r = await import(new URL('/relay.js', location.href));
			return `+string(arg)+`.map((b64) => {
				try {
					const h = r.parseSig(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
					return h.flags + ' ' + h.seq + ' ' + h.moovSeq + ' ' + h.epoch;
				} catch (e) {
					return e.code === 'malformed' ? 'err' : 'wrong error ' + e.message;
				}
			});
		})()`)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wantOut {
			if got[i] != wantOut[i] {
				t.Errorf("header %x: relay.js %q, Go %q", cases[i], got[i], wantOut[i])
			}
		}
	})

	t.Run("where a new child starts", func(t *testing.T) {
		// Kept units 10..19, keyframes 10, 14 and 18.
		got, err := browsertest.Eval[[]int](b, `(async () => {
			const r = await import(new URL('/relay.js', location.href));
			const kept = [];
			for (let seq = 10; seq < 20; seq++) kept.push({ seq, key: seq === 10 || seq === 14 || seq === 18 });
			return [0, 5, 9, 12, 13, 16, 17, 19, 30].map((from) => r.burstStart(kept, from)).concat([r.burstStart([], 0), r.burstStart([{ seq: 3, key: false }], 0)]);
		})()`)
		if err != nil {
			t.Fatal(err)
		}
		// A new viewer gets the newest GOP; a re-attaching one everything
		// after what it has, from a keyframe (the oldest when it is further
		// behind than what is kept).
		if want := "[8 0 0 0 4 4 8 8 8 -1 -1]"; fmt.Sprint(got) != want {
			t.Errorf("burstStart: %v, want %s", got, want)
		}
	})

	t.Run("assignment signatures", func(t *testing.T) {
		a := &relay.Assign{Link: "L1", Parent: "viewer 3", Depth: 2, Stream: "cam", Epoch: s.epoch.String(), Seq: 12345,
			Fingerprint: "sha-256 AA:BB", Self: "sha-256 CC:DD"}
		if err := relay.SignAssign(s.key, "room@x", "nonce-1", a); err != nil {
			t.Fatal(err)
		}
		c := &relay.Child{Link: "L2", Depth: 3, Fingerprint: "sha-256 EE:FF"}
		if err := relay.SignChild(s.key, "room@x", "cam", "nonce-1", c); err != nil {
			t.Fatal(err)
		}
		args, _ := json.Marshal([]any{s.id.String(), a, c})
		got, err := browsertest.Eval[[]bool](b, `(async (id, a, c) => {
			const r = await import(new URL('/relay.js', location.href));
			const v = new r.StreamVerifier(id, 'cam');
			return [
				await r.deviceSigned(v, r.assignMessage('room@x', 'nonce-1', a), a.signature),
				await r.deviceSigned(v, r.assignMessage('room@x', 'nonce-2', a), a.signature),
				await r.deviceSigned(v, r.assignMessage('room@x', 'nonce-1', { ...a, depth: 3 }), a.signature),
				await r.deviceSigned(v, r.childMessage('room@x', 'cam', 'nonce-1', c), c.signature),
				await r.deviceSigned(v, r.childMessage('room@x', 'cam', 'nonce-1', { ...c, fingerprint: 'sha-256 EE:FE' }), c.signature),
				r.fingerprintsAre('v=0\r\na=fingerprint:sha-256 ee:ff\r\nm=application 9\r\na=fingerprint:sha-256 EE:FF\r\n', 'sha-256 EE:FF'),
				r.fingerprintsAre('v=0\r\na=fingerprint:sha-256 EE:FF\r\na=fingerprint:sha-256 EE:FE\r\n', 'sha-256 EE:FF'),
				r.fingerprintsAre('v=0\r\n', 'sha-256 EE:FF'),
			];
		})(...`+string(args)+`)`)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != "[true false false true false true false false]" {
			t.Errorf("signature and fingerprint checks: %v", got)
		}
	})
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
