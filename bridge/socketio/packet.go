package socketio

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// PacketType is the first field of a Socket.IO 0.9 packet.
type PacketType uint8

// Packet types of protocol revision 1
// (https://github.com/LearnBoost/socket.io-spec#encoding).
const (
	PacketDisconnect PacketType = iota // 0: leave the endpoint, or the whole socket for ""
	PacketConnect                      // 1: joined an endpoint; the server sends "1::" first
	PacketHeartbeat                    // 2: keep-alive, both ways
	PacketMessage                      // 3: a text message
	PacketJSON                         // 4: a JSON message
	PacketEvent                        // 5: {"name":..,"args":[..]}
	PacketAck                          // 6: data "<id>[+<JSON array>]"
	PacketError                        // 7: data "<reason>[+<advice>]"
	PacketNoop                         // 8: nothing
)

var packetTypeNames = [...]string{
	"disconnect", "connect", "heartbeat", "message", "json", "event", "ack", "error", "noop",
}

// String returns the type's name in the 0.9 specification.
func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) {
		return packetTypeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Packet is one Socket.IO 0.9 packet: "type:id[+]:endpoint[:data]".
type Packet struct {
	Type PacketType
	// ID is the message id, decimal digits or empty. A client that sends an
	// id expects an ack packet for it.
	ID string
	// AckData is the "+" after ID: the ack must carry data (the callback
	// has arguments), so the application answers it, not the transport.
	AckData bool
	// Endpoint is the namespace; "" is the default one.
	Endpoint string
	// Data is everything after the third colon. It may hold colons.
	Data string
}

// maxIDLen bounds packet ids: the 0.9 client counts them up from 1, so 20
// digits is more than any real client reaches.
const maxIDLen = 20

// ParsePacket decodes one packet. The errors wrap ErrMalformed and say what
// is wrong, in words fit to send back to the client.
func ParsePacket(b []byte) (Packet, error) {
	var p Packet
	if len(b) == 0 {
		return p, fmt.Errorf("%w: empty packet", ErrMalformed)
	}
	if len(b) < 2 || b[0] < '0' || b[0] > '8' || b[1] != ':' {
		return p, fmt.Errorf("%w: a packet starts with a type digit 0-8 and ':', got %s", ErrMalformed, excerpt(b, 16))
	}
	p.Type = PacketType(b[0] - '0')
	rest := b[2:]
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i > maxIDLen {
		return p, fmt.Errorf("%w: packet id longer than %d digits", ErrMalformed, maxIDLen)
	}
	p.ID = string(rest[:i])
	rest = rest[i:]
	if len(rest) > 0 && rest[0] == '+' {
		if p.ID == "" {
			return p, fmt.Errorf("%w: '+' (ack with data) without a packet id", ErrMalformed)
		}
		p.AckData = true
		rest = rest[1:]
	}
	if len(rest) == 0 || rest[0] != ':' {
		return p, fmt.Errorf("%w: expected ':' after the packet id in %s", ErrMalformed, excerpt(b, 32))
	}
	rest = rest[1:]
	if j := bytes.IndexByte(rest, ':'); j >= 0 {
		p.Endpoint = string(rest[:j])
		p.Data = string(rest[j+1:])
	} else {
		p.Endpoint = string(rest)
	}
	return p, nil
}

// Encode returns the packet's wire text. It does not validate: an ID that
// is not decimal or an Endpoint holding ':' gives text ParsePacket rejects
// or reads differently. The data colon is left out when Data is empty.
func (p Packet) Encode() []byte {
	b := make([]byte, 0, 8+len(p.ID)+len(p.Endpoint)+len(p.Data))
	b = strconv.AppendUint(b, uint64(p.Type), 10)
	b = append(b, ':')
	b = append(b, p.ID...)
	if p.AckData {
		b = append(b, '+')
	}
	b = append(b, ':')
	b = append(b, p.Endpoint...)
	if p.Data != "" {
		b = append(b, ':')
		b = append(b, p.Data...)
	}
	return b
}

// payloadMark frames packets in a payload: "\ufffd<len>\ufffd<packet>...".
const payloadMark = "\ufffd"

// maxLenDigits bounds the length field of a payload; a frame is far smaller.
const maxLenDigits = 9

// SplitPayload splits a frame into packets. A frame that does not start
// with U+FFFD is a single packet and is returned as it is; otherwise it is
// the polling transports' framing "\ufffd<len>\ufffd<packet>...", where len
// counts UTF-16 code units as JavaScript's String.length does: a character
// beyond the Basic Multilingual Plane counts 2, every other character (and
// each byte of invalid UTF-8) counts 1. The packets alias b.
func SplitPayload(b []byte) ([][]byte, error) {
	if !bytes.HasPrefix(b, []byte(payloadMark)) {
		return [][]byte{b}, nil
	}
	var packets [][]byte
	rest := b
	for len(rest) > 0 {
		off := len(b) - len(rest)
		if !bytes.HasPrefix(rest, []byte(payloadMark)) {
			return nil, fmt.Errorf("%w: payload: expected U+FFFD before a packet length at byte %d", ErrMalformed, off)
		}
		rest = rest[len(payloadMark):]
		end := bytes.Index(rest, []byte(payloadMark))
		if end < 0 {
			return nil, fmt.Errorf("%w: payload: packet length at byte %d is not closed by U+FFFD", ErrMalformed, off)
		}
		digits := rest[:end]
		if len(digits) == 0 || len(digits) > maxLenDigits {
			return nil, fmt.Errorf("%w: payload: packet length at byte %d must be 1 to %d digits", ErrMalformed, off, maxLenDigits)
		}
		n := 0
		for _, c := range digits {
			if c < '0' || c > '9' {
				return nil, fmt.Errorf("%w: payload: packet length %s at byte %d is not a number", ErrMalformed, excerpt(digits, 16), off)
			}
			n = n*10 + int(c-'0')
		}
		rest = rest[end+len(payloadMark):]
		size, units := 0, 0
		for units < n {
			if size >= len(rest) {
				return nil, fmt.Errorf("%w: payload: packet at byte %d declares %d UTF-16 units but only %d follow", ErrMalformed, off, n, units)
			}
			r, w := utf8.DecodeRune(rest[size:])
			units += utf16Len(r)
			size += w
		}
		if units > n {
			return nil, fmt.Errorf("%w: payload: packet length %d at byte %d ends inside a character", ErrMalformed, n, off)
		}
		packets = append(packets, rest[:size:size])
		rest = rest[size:]
	}
	return packets, nil
}

// utf16Len is the number of UTF-16 code units JavaScript uses for r.
func utf16Len(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// event is the data of an event packet.
type event struct {
	Name json.RawMessage `json:"name"`
	Args json.RawMessage `json:"args"`
}

// maxEventName bounds event names; real ones are a few words.
const maxEventName = 128

// decodeEvent turns a message, json or event packet into the event the
// handler sees. Messages (3) and JSON messages (4) are the event "message"
// with one argument, as the 0.9 server delivers them: a JSON string of the
// text for 3, the JSON value itself for 4.
func decodeEvent(p Packet) (string, []json.RawMessage, error) {
	switch p.Type {
	case PacketMessage:
		s, err := json.Marshal(p.Data)
		if err != nil {
			return "", nil, fmt.Errorf("%w: message: %v", ErrMalformed, err)
		}
		return "message", []json.RawMessage{s}, nil
	case PacketJSON:
		if !json.Valid([]byte(p.Data)) {
			return "", nil, fmt.Errorf("%w: json packet: data is not valid JSON", ErrMalformed)
		}
		return "message", []json.RawMessage{json.RawMessage(p.Data)}, nil
	case PacketEvent:
	default:
		return "", nil, fmt.Errorf("%w: %s packet is not an event", ErrMalformed, p.Type)
	}
	var e event
	if err := json.Unmarshal([]byte(p.Data), &e); err != nil {
		return "", nil, fmt.Errorf("%w: event: data is not a JSON object {\"name\":..,\"args\":[..]}: %v", ErrMalformed, err)
	}
	var name string
	if len(e.Name) == 0 || e.Name[0] != '"' || json.Unmarshal(e.Name, &name) != nil || name == "" {
		return "", nil, fmt.Errorf("%w: event: name must be a non-empty string", ErrMalformed)
	}
	if len(name) > maxEventName {
		return "", nil, fmt.Errorf("%w: event: name longer than %d bytes", ErrMalformed, maxEventName)
	}
	var args []json.RawMessage
	if len(e.Args) > 0 && string(e.Args) != "null" {
		if e.Args[0] != '[' {
			return "", nil, fmt.Errorf("%w: event %q: args must be an array", ErrMalformed, name)
		}
		if err := json.Unmarshal(e.Args, &args); err != nil {
			return "", nil, fmt.Errorf("%w: event %q: args: %v", ErrMalformed, name, err)
		}
	}
	return name, args, nil
}

// encodeEvent returns the wire text of an event packet.
func encodeEvent(name string, args []any) ([]byte, error) {
	n, err := json.Marshal(name)
	if err != nil {
		return nil, err
	}
	a, err := marshalArgs(args)
	if err != nil {
		return nil, err
	}
	data := make([]byte, 0, len(n)+len(a)+18)
	data = append(data, `{"name":`...)
	data = append(data, n...)
	data = append(data, `,"args":`...)
	data = append(data, a...)
	data = append(data, '}')
	return Packet{Type: PacketEvent, Data: string(data)}.Encode(), nil
}

// marshalArgs encodes arguments as a JSON array, "[]" for none.
func marshalArgs(args []any) ([]byte, error) {
	if len(args) == 0 {
		return []byte("[]"), nil
	}
	return json.Marshal(args)
}

// excerpt quotes the start of b for an error message.
func excerpt(b []byte, n int) string {
	if len(b) <= n {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:n])) + "…"
}
