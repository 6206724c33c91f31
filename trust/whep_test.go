package trust

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWHEPProof(t *testing.T) {
	const fp = "sha-256 AB:CD"
	now := time.Now()
	ms := now.UnixMilli()
	mac := WHEPProofMAC("s3cret", "lobby", "cam", fp, ms)
	if !CheckWHEPMAC("s3cret", "lobby", "cam", "sha-256 ab:cd", ms, mac) {
		t.Fatal("an honest proof (fingerprint in lower case) does not check")
	}
	for name, ok := range map[string]bool{
		"other secret":      CheckWHEPMAC("secret", "lobby", "cam", fp, ms, mac),
		"other room":        CheckWHEPMAC("s3cret", "hall", "cam", fp, ms, mac),
		"other stream":      CheckWHEPMAC("s3cret", "lobby", "door", fp, ms, mac),
		"other fingerprint": CheckWHEPMAC("s3cret", "lobby", "cam", "sha-256 AB:CE", ms, mac),
		"other time":        CheckWHEPMAC("s3cret", "lobby", "cam", fp, ms+1, mac),
		"field shift":       CheckWHEPMAC("s3cret", "lobbyc", "am", fp, ms, mac),
		"no secret":         CheckWHEPMAC("", "lobby", "cam", fp, ms, WHEPProofMAC("", "lobby", "cam", fp, ms)),
		"garbage":           CheckWHEPMAC("s3cret", "lobby", "cam", fp, ms, "!!"),
	} {
		if ok {
			t.Errorf("%s: the proof checks", name)
		}
	}
	// The ERS proof with the same secret is no WHEP proof.
	if CheckWHEPMAC("s3cret", "lobby", "cam", fp, ms, Proof("s3cret", "lobby", "cam", fp)) {
		t.Error("an ERS proof passes as a WHEP one")
	}

	p := WHEPProof{UnixMilli: ms, Room: mac, Talk: mac}
	got, err := ParseWHEPProof(p.String())
	if err != nil || got != p {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if !got.Fresh(now.Add(WHEPProofWindow-time.Second)) || !got.Fresh(now.Add(-WHEPProofWindow+time.Second)) {
		t.Error("a proof within the window is not fresh")
	}
	if got.Fresh(now.Add(WHEPProofWindow+time.Second)) || got.Fresh(now.Add(-WHEPProofWindow-time.Second)) {
		t.Error("a proof outside the window is fresh")
	}
	for _, bad := range []string{
		"", "t=1", "room=" + mac, "t=1; room=" + mac + "; room=" + mac, "t=1; t=2; room=" + mac,
		"t=-5; room=" + mac, "t=x; room=" + mac, "t=1; room=AAAA", "t=1; roomy=" + mac, "t=1; room",
		"t=1; talk=" + mac + strings.Repeat(" ", MaxWHEPProof),
	} {
		if _, err := ParseWHEPProof(bad); !errors.Is(err, ErrBadWHEPProof) {
			t.Errorf("%q: %v, want ErrBadWHEPProof", bad, err)
		}
	}
}

func FuzzParseWHEPProof(f *testing.F) {
	mac := WHEPProofMAC("s", "r", "c", "sha-256 AB", 1)
	f.Add("t=1764270000000; room=" + mac)
	f.Add("t=1; room=" + mac + "; talk=" + mac)
	f.Add("t=1;;room=")
	f.Fuzz(func(t *testing.T, v string) {
		p, err := ParseWHEPProof(v)
		if err != nil {
			return
		}
		if len(v) > MaxWHEPProof {
			t.Fatalf("accepted %d bytes", len(v))
		}
		again, err := ParseWHEPProof(p.String())
		if err != nil || again != p {
			t.Fatalf("%q parses to %+v, which writes as %q and reads back as %+v, %v", v, p, p.String(), again, err)
		}
	})
}
