package bridge

import (
	"encoding/json"
	"testing"

	"github.com/ersmesh/ersmesh/ersproto"
	"github.com/ersmesh/ersmesh/signalwire"
)

// FuzzERSEvent feeds arbitrary argument arrays to the decoders of the ERS
// events a browser sends (join and message): they must never panic, and
// whatever they let through to a device must be a valid signalling message.
func FuzzERSEvent(f *testing.F) {
	for _, s := range []string{
		`["demo",{"token":"t","streamName":"sample","transport":"srtp"}]`,
		`["demo"]`,
		`[{"to":"12D3KooW","sid":"1","type":"answer","payload":{"type":"answer","sdp":"v=0"}}]`,
		`[{"type":"candidate","payload":{"candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0"}}}]`,
		`[42,{"streamName":7}]`,
		`[null]`,
		`[]`,
		`["x",{"transport":"rtmp"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var args []json.RawMessage
		if json.Unmarshal(b, &args) != nil {
			return
		}
		if room, data, err := ersproto.ParseJoin(args); err == nil {
			m := &signalwire.Message{Kind: signalwire.KindJoin, Room: room, Stream: data.StreamName, Transport: data.Transport, Token: data.Token}
			// A join the device would refuse is fine; encoding it must not be.
			if m.Validate() == nil {
				if _, err := json.Marshal(m); err != nil {
					t.Fatalf("valid join does not encode: %v", err)
				}
			}
		}
		if len(args) == 0 {
			return
		}
		m, err := ersproto.ParseMessage(args[0])
		if err != nil {
			return
		}
		sm := &signalwire.Message{Kind: signalwire.KindSignal, Type: m.Type, SID: m.SID, Payload: m.Payload}
		if sm.Validate() != nil {
			return
		}
		body, err := json.Marshal(sm)
		if err != nil {
			t.Fatalf("a message that validates does not encode: %v", err)
		}
		if _, err := signalwire.DecodeMessage(body); err != nil && len(body) <= signalwire.MaxMessageSize {
			t.Fatalf("a message the bridge would forward is refused by the device: %v", err)
		}
	})
}
