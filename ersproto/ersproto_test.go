package ersproto

import (
	"encoding/json"
	"strings"
	"testing"
)

func args(t *testing.T, s string) []json.RawMessage {
	t.Helper()
	var a []json.RawMessage
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseJoin(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name, args, room string
		data             Join
		err              string
	}{
		{"full", `["demo",{"token":"t","streamName":"sample","transport":"srtp","nonce":"n"}]`, "demo",
			Join{Token: "t", StreamName: "sample", Transport: "srtp", Nonce: "n"}, ""},
		{"signalmaster", `["demo"]`, "demo", Join{}, ""},
		{"data not an object", `["demo","sample"]`, "demo", Join{}, ""},
		{"unknown keys", `["demo",{"video":true}]`, "demo", Join{}, ""},
		{"no args", `[]`, "", Join{}, "needs a room name"},
		{"room not a string", `[42]`, "", Join{}, "must be a string"},
		{"bad data", `["demo",{"streamName":7}]`, "", Join{}, "bad data object"},
		{"room too long", `["` + long(MaxRoom+1) + `"]`, "", Join{}, "longer than 256"},
		{"room at the limit", `["` + long(MaxRoom) + `"]`, long(MaxRoom), Join{}, ""},
		{"escaped room too long", `["` + strings.Repeat(`\u00e9`, MaxRoom/2+1) + `"]`, "", Join{}, "longer than 256"},
		{"token too long", `["demo",{"token":"` + long(MaxToken+1) + `"}]`, "", Join{}, "token is longer"},
		{"nonce too long", `["demo",{"nonce":"` + long(MaxNonce+1) + `"}]`, "", Join{}, "nonce is longer"},
		{"data too large", `["demo",{"x":"` + long(MaxJoinData) + `"}]`, "", Join{}, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room, data, err := ParseJoin(args(t, tc.args))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil || room != tc.room || data != tc.data {
				t.Fatalf("got %q %+v %v, want %q %+v", room, data, err, tc.room, tc.data)
			}
		})
	}
}

// TestJoinArgs checks that what the Go clients send is what ParseJoin reads,
// and that empty fields stay out, as the player leaves them out.
func TestJoinArgs(t *testing.T) {
	b, err := json.Marshal(JoinArgs("demo", Join{StreamName: "sample", Transport: TransportSRTP}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `["demo",{"streamName":"sample","transport":"srtp"}]`; string(b) != want {
		t.Fatalf("join args %s, want %s", b, want)
	}
	room, data, err := ParseJoin(args(t, string(b)))
	if err != nil || room != "demo" || data != (Join{StreamName: "sample", Transport: "srtp"}) {
		t.Fatalf("round trip: %q %+v %v", room, data, err)
	}
}

func TestParseMessage(t *testing.T) {
	m, err := ParseMessage(json.RawMessage(`{"to":"dev","sid":"1","type":"candidate","payload":{"candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}}`))
	if err != nil || m.To != "dev" || m.SID != "1" || m.Type != TypeCandidate {
		t.Fatalf("got %+v %v", m, err)
	}
	var p CandidatePayload
	if err := m.Decode(&p); err != nil || p.Candidate.Candidate == "" || *p.Candidate.SDPMid != "0" || *p.Candidate.SDPMLineIndex != 0 {
		t.Fatalf("candidate %+v %v", p, err)
	}
	for name, in := range map[string]string{
		"not an object": `"offer"`,
		"too large":     `{"type":"offer","payload":"` + strings.Repeat("a", MaxMessage) + `"}`,
		"bad field":     `{"type":7}`,
	} {
		if _, err := ParseMessage(json.RawMessage(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestReply(t *testing.T) {
	offer := Message{From: "dev", To: "sock", SID: "s1", Type: TypeOffer}
	m, err := Reply(offer, TypeAnswer, SessionDescription{Type: "answer", SDP: "v=0"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	want := `{"to":"dev","sid":"s1","broadcaster":"dev","roomType":"video","type":"answer","payload":{"type":"answer","sdp":"v=0"},"prefix":"webkit"}`
	if string(b) != want {
		t.Fatalf("reply %s, want %s", b, want)
	}
}

// TestRoom pins the join ack's room description that ERS players read.
func TestRoom(t *testing.T) {
	for _, tc := range []struct {
		room Room
		want string
	}{
		{DeviceRoom("12D3KooW"), `{"clients":{"12D3KooW":{"video":true,"audio":false,"screen":false}}}`},
		{DeviceRoom(""), `{"clients":{}}`},
		{Room{Clients: map[string]Media{}, Unreachable: true}, `{"clients":{},"unreachable":true}`},
	} {
		b, err := json.Marshal(tc.room)
		if err != nil || string(b) != tc.want {
			t.Errorf("room %s %v, want %s", b, err, tc.want)
		}
		var back Room
		if err := json.Unmarshal(b, &back); err != nil || back.Device() != tc.room.Device() {
			t.Errorf("room %s reads back as device %q", b, back.Device())
		}
	}
}
