package ersproto

import (
	"encoding/json"
	"testing"
)

// FuzzParse feeds arbitrary argument arrays to the parsers of what a
// browser sends: they must never panic, and what they accept must be within
// the limits and encode again.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`["demo",{"token":"t","streamName":"sample","transport":"srtp","nonce":"n"}]`,
		`["demo"]`,
		`["x",{"transport":"rtmp"}]`,
		`[42,{"streamName":7}]`,
		`[{"to":"12D3KooW","sid":"1","type":"answer","payload":{"type":"answer","sdp":"v=0"}}]`,
		`[{"type":"candidate","payload":{"candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMid":"0"}}}]`,
		`[null]`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a []json.RawMessage
		if json.Unmarshal(b, &a) != nil {
			return
		}
		if room, data, err := ParseJoin(a); err == nil {
			if len(room) > MaxRoom || len(data.Token) > MaxToken || len(data.StreamName) > MaxStream ||
				len(data.Transport) > MaxTransport || len(data.Nonce) > MaxNonce {
				t.Fatalf("join beyond the limits accepted: %q %+v", room, data)
			}
			if _, err := json.Marshal(JoinArgs(room, data)); err != nil {
				t.Fatalf("accepted join does not encode: %v", err)
			}
		}
		if len(a) == 0 {
			return
		}
		m, err := ParseMessage(a[0])
		if err != nil {
			return
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
	})
}
