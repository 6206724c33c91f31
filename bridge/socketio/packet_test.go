package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParsePacket(t *testing.T) {
	cases := []struct {
		in   string
		want Packet
	}{
		{"0::", Packet{Type: PacketDisconnect}},
		{"1::", Packet{Type: PacketConnect}},
		{"1::/chat", Packet{Type: PacketConnect, Endpoint: "/chat"}},
		{"1::/chat:?a=b", Packet{Type: PacketConnect, Endpoint: "/chat", Data: "?a=b"}},
		{"2::", Packet{Type: PacketHeartbeat}},
		{"2:::", Packet{Type: PacketHeartbeat}},
		{"3:::hello: world", Packet{Type: PacketMessage, Data: "hello: world"}},
		{"3:7::x", Packet{Type: PacketMessage, ID: "7", Data: "x"}},
		{`4:::{"a":1}`, Packet{Type: PacketJSON, Data: `{"a":1}`}},
		{`5:1+::{"name":"join","args":["x"]}`, Packet{Type: PacketEvent, ID: "1", AckData: true, Data: `{"name":"join","args":["x"]}`}},
		{`5:12:/ns:{"name":"a"}`, Packet{Type: PacketEvent, ID: "12", Endpoint: "/ns", Data: `{"name":"a"}`}},
		{`6:::1+["x"]`, Packet{Type: PacketAck, Data: `1+["x"]`}},
		{"7:::1+0", Packet{Type: PacketError, Data: "1+0"}},
		{"8::", Packet{Type: PacketNoop}},
	}
	for _, c := range cases {
		got, err := ParsePacket([]byte(c.in))
		if err != nil {
			t.Errorf("ParsePacket(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParsePacket(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestParsePacketErrors(t *testing.T) {
	cases := map[string]string{
		"":                                    "empty packet",
		"x":                                   "type digit",
		"9::":                                 "type digit",
		"10::":                                "type digit",
		"5":                                   "type digit",
		"5:":                                  "expected ':'",
		"5:1":                                 "expected ':'",
		"5:x::":                               "expected ':'",
		"5:+::":                               "without a packet id",
		"5:1++::":                             "expected ':'",
		"5:" + strings.Repeat("9", 21) + "::": "longer than 20",
	}
	for in, want := range cases {
		_, err := ParsePacket([]byte(in))
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePacket(%q) error = %v, want ErrMalformed", in, err)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePacket(%q) error = %q, want it to say %q", in, err, want)
		}
	}
}

func TestEncode(t *testing.T) {
	cases := []struct {
		p    Packet
		want string
	}{
		{Packet{Type: PacketConnect}, "1::"},
		{Packet{Type: PacketConnect, Endpoint: "/chat"}, "1::/chat"},
		{Packet{Type: PacketHeartbeat}, "2::"},
		{Packet{Type: PacketAck, Data: `1+[null,"x"]`}, `6:::1+[null,"x"]`},
		{Packet{Type: PacketEvent, ID: "3", AckData: true, Data: `{"name":"a"}`}, `5:3+::{"name":"a"}`},
		{Packet{Type: PacketError, Endpoint: "/x", Data: "2"}, "7::/x:2"},
	}
	for _, c := range cases {
		if got := string(c.p.Encode()); got != c.want {
			t.Errorf("%+v.Encode() = %q, want %q", c.p, got, c.want)
		}
	}
}

func TestEncodeEvent(t *testing.T) {
	b, err := encodeEvent("stunservers", []any{[]map[string]string{{"urls": "stun:a:3478"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `5:::{"name":"stunservers","args":[[{"urls":"stun:a:3478"}]]}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	b, _ = encodeEvent("x", nil)
	if want := `5:::{"name":"x","args":[]}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	if _, err := encodeEvent("x", []any{make(chan int)}); err == nil {
		t.Error("encoding a channel should fail")
	}
}

func TestDecodeEvent(t *testing.T) {
	ok := []struct {
		data, name, args string
	}{
		{`{"name":"join","args":["r",{"token":"t"}]}`, "join", `["r",{"token":"t"}]`},
		{`{"name":"leave"}`, "leave", `[]`},
		{`{"name":"leave","args":null}`, "leave", `[]`},
	}
	for _, c := range ok {
		name, args, err := decodeEvent(Packet{Type: PacketEvent, Data: c.data})
		if err != nil {
			t.Errorf("decodeEvent(%s): %v", c.data, err)
			continue
		}
		if got := joinRaw(args); name != c.name || got != c.args {
			t.Errorf("decodeEvent(%s) = %q %s, want %q %s", c.data, name, got, c.name, c.args)
		}
	}
	bad := map[string]string{
		``:                        "not a JSON object",
		`{bad`:                    "not a JSON object",
		`[1]`:                     "not a JSON object",
		`{}`:                      "non-empty string",
		`{"name":""}`:             "non-empty string",
		`{"name":5}`:              "non-empty string",
		`{"name":null}`:           "non-empty string",
		`{"name":"a","args":{}}`:  "must be an array",
		`{"name":"a","args":"x"}`: "must be an array",
		`{"name":"` + strings.Repeat("a", 129) + `"}`: "longer than 128",
	}
	for data, want := range bad {
		_, _, err := decodeEvent(Packet{Type: PacketEvent, Data: data})
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("decodeEvent(%s) error = %v, want ErrMalformed saying %q", data, err, want)
		}
	}
	if _, args, _ := decodeEvent(Packet{Type: PacketMessage, Data: `say "hi"`}); joinRaw(args) != `["say \"hi\""]` {
		t.Errorf("message packet args = %s", joinRaw(args))
	}
	if _, args, _ := decodeEvent(Packet{Type: PacketJSON, Data: `{"a":1}`}); joinRaw(args) != `[{"a":1}]` {
		t.Errorf("json packet args = %s", joinRaw(args))
	}
	if _, _, err := decodeEvent(Packet{Type: PacketJSON, Data: `{`}); !errors.Is(err, ErrMalformed) {
		t.Errorf("json packet with bad JSON: %v", err)
	}
}

func joinRaw(args []json.RawMessage) string {
	parts := make([]string, len(args))
	for i, a := range args {
		parts[i] = string(a)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// encodePayload frames packets the way the 0.9 polling transports do.
func encodePayload(packets [][]byte) []byte {
	var b []byte
	for _, p := range packets {
		units := 0
		for rest := p; len(rest) > 0; {
			r, w := utf8.DecodeRune(rest)
			units += utf16Len(r)
			rest = rest[w:]
		}
		b = append(b, payloadMark...)
		b = strconv.AppendInt(b, int64(units), 10)
		b = append(b, payloadMark...)
		b = append(b, p...)
	}
	return b
}

func TestSplitPayload(t *testing.T) {
	single := []byte(`5:::{"name":"a"}`)
	got, err := SplitPayload(single)
	if err != nil || len(got) != 1 || !bytes.Equal(got[0], single) {
		t.Fatalf("single packet: %q, %v", got, err)
	}

	// "é" is 2 bytes and 1 UTF-16 unit, "😀" 4 bytes and 2 units, "€" 3 and 1.
	packets := [][]byte{
		[]byte("2::"),
		[]byte(`5:1+::{"name":"join","args":["é😀€"]}`),
		[]byte("3:::\ufffd in the data"),
	}
	framed := encodePayload(packets)
	if !bytes.Contains(framed, []byte("\ufffd37\ufffd5:1+")) {
		t.Fatalf("the join packet should count 37 UTF-16 units: %q", framed)
	}
	got, err = SplitPayload(framed)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(packets) {
		t.Fatalf("got %d packets, want %d: %q", len(got), len(packets), got)
	}
	for i := range packets {
		if !bytes.Equal(got[i], packets[i]) {
			t.Errorf("packet %d = %q, want %q", i, got[i], packets[i])
		}
	}

	bad := map[string]string{
		"\ufffd":                 "not closed",
		"\ufffd3":                "not closed",
		"\ufffd\ufffd2::":        "1 to 9 digits",
		"\ufffd1234567890\ufffd": "1 to 9 digits",
		"\ufffdx\ufffd2::":       "not a number",
		"\ufffd4\ufffd2::":       "only 3 follow",
		"\ufffd3\ufffd2::x":      "expected U+FFFD",
		"\ufffd5\ufffd3:::😀":     "inside a character",
	}
	for in, want := range bad {
		_, err := SplitPayload([]byte(in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("SplitPayload(%q) error = %v, want ErrMalformed saying %q", in, err, want)
		}
	}
}

func FuzzParsePacket(f *testing.F) {
	for _, s := range []string{
		"0::", "1::", "1::/chat:?a=b", "2::", "2:::", "3:::hi", `4:::{"a":1}`,
		`5:1+::{"name":"join","args":["x",{"token":"t"}]}`, `5:2::{"name":"leave"}`,
		`6:::1+[null]`, "7:::1+0", "8::", "", "9::", "5:+::", "5:1", ":::",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if p.Type > PacketNoop {
			t.Fatalf("type %d out of range", p.Type)
		}
		if p.AckData && p.ID == "" {
			t.Fatal("AckData without an ID")
		}
		for _, c := range p.ID {
			if c < '0' || c > '9' {
				t.Fatalf("ID %q is not decimal", p.ID)
			}
		}
		if strings.Contains(p.Endpoint, ":") {
			t.Fatalf("endpoint %q holds ':'", p.Endpoint)
		}
		enc := p.Encode()
		q, err := ParsePacket(enc)
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", enc, b, err)
		}
		if q != p {
			t.Fatalf("round trip %q → %+v → %q → %+v", b, p, enc, q)
		}
		// Encode only drops an empty data field's colon.
		if !bytes.Equal(enc, b) && !bytes.Equal(append(enc, ':'), b) {
			t.Fatalf("Encode(ParsePacket(%q)) = %q", b, enc)
		}
		if p.Type >= PacketMessage && p.Type <= PacketEvent {
			decodeEvent(p) // must not panic
		}
	})
}

func FuzzSplitPayload(f *testing.F) {
	f.Add([]byte("2::"))
	f.Add([]byte("\ufffd3\ufffd2::\ufffd3\ufffd8::"))
	f.Add(encodePayload([][]byte{[]byte(`5:1+::{"name":"join","args":["é😀"]}`), []byte("3:::\ufffd")}))
	f.Add([]byte("\ufffd5\ufffd3:::😀"))
	f.Add([]byte("\ufffd0\ufffd"))
	f.Add([]byte("\ufffd\xff\ufffd"))
	f.Add([]byte("\ufffd2\ufffd\xe2\x82\ufffd1\ufffdx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := SplitPayload(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.HasPrefix(b, []byte(payloadMark)) {
			if len(parts) != 1 || !bytes.Equal(parts[0], b) {
				t.Fatalf("unframed input %q split into %q", b, parts)
			}
			return
		}
		total := 0
		for _, p := range parts {
			total += len(p)
		}
		if total > len(b) {
			t.Fatalf("%d packet bytes from a %d byte payload", total, len(b))
		}
		again, err := SplitPayload(encodePayload(parts))
		if err != nil {
			t.Fatalf("re-splitting %q: %v", parts, err)
		}
		if len(again) != len(parts) {
			t.Fatalf("round trip: %q became %q", parts, again)
		}
		for i := range parts {
			if !bytes.Equal(again[i], parts[i]) {
				t.Fatalf("round trip: %q became %q", parts, again)
			}
		}
	})
}
