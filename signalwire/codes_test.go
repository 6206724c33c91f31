package signalwire

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestValidateCodesAndViewerOffers(t *testing.T) {
	for _, m := range []*Message{
		{Kind: KindReject, Code: CodeForbidden, Reason: "no"},
		{Kind: KindLeave, Code: CodeBadOffer},
		{Kind: KindReject, Code: "some-newer-code"},
		{Kind: KindJoin, Room: "lobby", ViewerOffers: true},
	} {
		if err := m.Validate(); err != nil {
			t.Errorf("%+v: %v", m, err)
		}
	}
	for _, m := range []*Message{
		{Kind: KindReject, Code: "Forbidden"},
		{Kind: KindReject, Code: "not found"},
		{Kind: KindReject, Code: strings.Repeat("a", maxCode+1)},
	} {
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", m, err)
		}
	}
}

func TestMessageRoundTrip(t *testing.T) {
	in := &Message{Kind: KindJoin, Room: "lobby", Stream: "cam", Token: "t", ViewerOffers: true}
	var buf bytes.Buffer
	if err := WriteMessage(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadMessage(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	if !out.ViewerOffers || out.Room != "lobby" || out.Token != "t" {
		t.Errorf("round trip: %+v", out)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"kind":"join","room":"lobby","viewerOffers":true}`,
		`{"kind":"reject","code":"forbidden","reason":"no"}`,
		`{"kind":"signal","type":"offer","payload":{"type":"offer","sdp":"v=0"}}`,
		`{"kind":"leave","code":"bad-offer"}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		// Whatever is accepted is valid and survives a round trip.
		var buf bytes.Buffer
		if err := WriteMessage(&buf, m); err != nil {
			if errors.Is(err, ErrTooLarge) {
				return // re-encoding may escape more than the input did
			}
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		if _, err := ReadMessage(bufio.NewReader(&buf)); err != nil {
			t.Fatalf("accepted %q, but its re-encoding is refused: %v", b, err)
		}
	})
}
