package ersproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// MaxMessage bounds the encoded argument of a message event: an SDP offer
// with many candidates is a few KiB; a device accepts no more (package
// signalwire).
const MaxMessage = 64 << 10

// Message is the argument of the ERS "message" event, both ways: the
// device's signalling relayed to the player (From the device, To the
// player's socket) and the player's to the device (To the device). Payload
// is relayed untouched; its shape depends on Type (SessionDescription,
// CandidatePayload, Challenge, Auth).
type Message struct {
	To          string          `json:"to,omitempty"`
	From        string          `json:"from,omitempty"`
	SID         string          `json:"sid,omitempty"`
	Broadcaster string          `json:"broadcaster,omitempty"`
	RoomType    string          `json:"roomType,omitempty"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Prefix      string          `json:"prefix,omitempty"`
}

// ParseMessage reads the argument of a message event.
func ParseMessage(arg json.RawMessage) (Message, error) {
	var m Message
	if len(arg) > MaxMessage {
		return m, fmt.Errorf("message: larger than %d bytes", MaxMessage)
	}
	if err := json.Unmarshal(arg, &m); err != nil {
		return Message{}, errors.New("message: the argument must be an object")
	}
	return m, nil
}

// Reply is a message from a player to the device that sent offer, in the
// offer's session, with payload encoded as JSON.
func Reply(offer Message, typ string, payload any) (Message, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return Message{}, fmt.Errorf("ersproto: %s payload: %w", typ, err)
	}
	return Message{
		To: offer.From, SID: offer.SID, Broadcaster: offer.From, RoomType: RoomTypeVideo,
		Type: typ, Payload: b, Prefix: PrefixWebkit,
	}, nil
}

// Decode reads the payload into v.
func (m Message) Decode(v any) error {
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return fmt.Errorf("ersproto: %s payload: %w", m.Type, err)
	}
	return nil
}

// SessionDescription is the payload of an offer or answer: an
// RTCSessionDescription, and for a device's offer to an ersmesh player the
// signature that binds it to the room's key (package trust).
type SessionDescription struct {
	Type      string `json:"type"`
	SDP       string `json:"sdp"`
	Signature string `json:"signature,omitempty"`
}

// CandidatePayload is the payload of a candidate message.
type CandidatePayload struct {
	Candidate Candidate `json:"candidate"`
}

// Candidate is an RTCIceCandidateInit.
type Candidate struct {
	Candidate     string  `json:"candidate"`
	SDPMid        *string `json:"sdpMid,omitempty"`
	SDPMLineIndex *uint16 `json:"sdpMLineIndex,omitempty"`
}

// Challenge is the payload of a device's challenge for a room secret.
type Challenge struct {
	Challenge string `json:"challenge"`
}

// Auth is the payload of a player's proof of the room secret, bound to
// the DTLS certificate with Fingerprint.
type Auth struct {
	Fingerprint string `json:"fingerprint"`
	Proof       string `json:"proof"`
	// TalkProof is the same MAC keyed with the stream's talk secret, when
	// the player has one and the challenge says the stream takes it.
	TalkProof string `json:"talkProof,omitempty"`
}

// ResumeProof is the payload of a player's answer to a resume challenge:
// its signature with the session's resume key (package trust).
type ResumeProof struct {
	Signature string `json:"signature"`
}
