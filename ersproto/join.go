package ersproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Limits on a join. They match what a device accepts (package signalwire),
// so that a join the bridge lets through is one the device can read.
const (
	MaxRoom      = 256
	MaxStream    = 256
	MaxTransport = 256
	MaxToken     = 1024
	MaxNonce     = 64
	MaxResumeKey = 128
	MaxRelay     = 128
	MaxSID       = 256
	// MaxJoinData bounds the encoded data object of a join.
	MaxJoinData = 4 << 10
)

// Join is the second argument of join(room, data): what the player wants.
// Plain signalmaster clients send only the room name; then it is zero.
type Join struct {
	Token      string `json:"token,omitempty"`
	StreamName string `json:"streamName,omitempty"`
	Transport  string `json:"transport,omitempty"`
	// Nonce is the ersmesh player's fresh value that the device signs its
	// offer for (package trust); ERS players do not send it.
	Nonce string `json:"nonce,omitempty"`
	// ResumeKey (ersmesh players) is the viewer's public key for
	// re-attaching the session through another bridge later.
	ResumeKey string `json:"resumeKey,omitempty"`
	// Relay (ersmesh players) is the fingerprint of the join's DTLS
	// certificate: the player speaks the relay protocol and may be served
	// by another viewer (docs/relay.md).
	Relay string `json:"relay,omitempty"`
	// SID, in a resume, is the session (the offer's sid) to re-attach.
	SID string `json:"sid,omitempty"`
}

// JoinArgs are the arguments of a join event for room.
func JoinArgs(room string, data Join) []any {
	return []any{room, data}
}

// ParseJoin reads the arguments of join(room, [data]), and of resume(room,
// data), which has the same shape. A second argument
// that is not an object is ignored, as signalmaster did.
func ParseJoin(args []json.RawMessage) (room string, data Join, err error) {
	if len(args) == 0 {
		return "", data, errors.New("join needs a room name")
	}
	if len(args[0]) > 2*MaxRoom+2 { // JSON escapes at most double a name
		return "", data, fmt.Errorf("join: the room name is longer than %d bytes", MaxRoom)
	}
	if err := json.Unmarshal(args[0], &room); err != nil {
		return "", data, errors.New("join: the room name must be a string")
	}
	if len(room) > MaxRoom {
		return "", data, fmt.Errorf("join: the room name is longer than %d bytes", MaxRoom)
	}
	if len(args) > 1 && len(args[1]) > 0 && args[1][0] == '{' {
		if len(args[1]) > MaxJoinData {
			return "", data, fmt.Errorf("join: the data object is larger than %d bytes", MaxJoinData)
		}
		if err := json.Unmarshal(args[1], &data); err != nil {
			return "", data, fmt.Errorf("join: bad data object: %v", err)
		}
		for _, f := range []struct {
			name  string
			value string
			max   int
		}{
			{"token", data.Token, MaxToken},
			{"stream", data.StreamName, MaxStream},
			{"transport", data.Transport, MaxTransport},
			{"nonce", data.Nonce, MaxNonce},
			{"resumeKey", data.ResumeKey, MaxResumeKey},
			{"sid", data.SID, MaxSID},
			{"relay", data.Relay, MaxRelay},
		} {
			if len(f.value) > f.max {
				return "", Join{}, fmt.Errorf("join: %s is longer than %d bytes", f.name, f.max)
			}
		}
	}
	return room, data, nil
}
