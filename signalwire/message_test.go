package signalwire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	msgs := []*Message{
		{Kind: KindJoin, Session: "s1", Room: "frontdoor", Stream: "cam", Transport: "srtp", Token: "tok",
			ICEServers: []ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}, {URLs: []string{"turn:127.0.0.1:3478?transport=tcp"}, Username: "1:u", Credential: "p"}}},
		{Kind: KindAccept},
		{Kind: KindReject, Reason: "no such stream"},
		{Kind: KindSignal, Type: "offer", SID: "abc", Payload: json.RawMessage(`{"type":"offer","sdp":"v=0\r\n"}`)},
		{Kind: KindSignal, Type: "candidate", SID: "abc", Payload: json.RawMessage(`{"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host"}}`)},
		{Kind: KindPing},
		{Kind: KindLeave, Reason: "bye"},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatalf("write %s: %v", m.Kind, err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range msgs {
		got, err := ReadMessage(r)
		if err != nil {
			t.Fatalf("read %s: %v", want.Kind, err)
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if !bytes.Equal(wj, gj) {
			t.Errorf("read %s, want %s", gj, wj)
		}
	}
	if _, err := ReadMessage(r); err != io.EOF {
		t.Errorf("after the last message: %v, want io.EOF", err)
	}
}

func TestValidateRejects(t *testing.T) {
	long := strings.Repeat("x", maxShortField+1)
	servers := make([]ICEServer, maxICEServers+1)
	for i := range servers {
		servers[i] = ICEServer{URLs: []string{"stun:x"}}
	}
	cases := map[string]*Message{
		"unknown kind":         {Kind: "shout"},
		"empty kind":           {},
		"join without room":    {Kind: KindJoin},
		"unknown transport":    {Kind: KindJoin, Room: "r", Transport: "rtmp"},
		"long room":            {Kind: KindJoin, Room: long},
		"long token":           {Kind: KindJoin, Room: "r", Token: strings.Repeat("t", maxToken+1)},
		"long reason":          {Kind: KindLeave, Reason: strings.Repeat("r", maxReason+1)},
		"too many ICE servers": {Kind: KindJoin, Room: "r", ICEServers: servers},
		"ICE server no url":    {Kind: KindJoin, Room: "r", ICEServers: []ICEServer{{}}},
		"ICE url too long":     {Kind: KindJoin, Room: "r", ICEServers: []ICEServer{{URLs: []string{long}}}},
		"ICE cred too long":    {Kind: KindJoin, Room: "r", ICEServers: []ICEServer{{URLs: []string{"stun:x"}, Credential: long}}},
		"unknown signal type":  {Kind: KindSignal, Type: "exec"},
		"long sid":             {Kind: KindSignal, Type: "offer", SID: long},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			if err := m.Validate(); !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]string{
		"not JSON":          `{"kind":`,
		"array":             `[1,2]`,
		"payload not JSON":  `{"kind":"signal","type":"offer","payload":nope}`,
		"wrong field type":  `{"kind":"join","room":7}`,
		"unknown kind":      `{"kind":"admin"}`,
		"null":              `null`,
		"smuggled event":    `{"kind":"signal","type":"join"}`,
		"join missing room": `{"kind":"join","stream":"s"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			if m, err := DecodeMessage([]byte(body)); err == nil {
				t.Errorf("decoded %+v", m)
			}
		})
	}
}

// TestTooLarge checks that an announced length beyond the cap fails before
// the body is read or allocated, and that writing one fails too.
func TestTooLarge(t *testing.T) {
	var buf bytes.Buffer
	buf.Write(binary.AppendUvarint(nil, MaxMessageSize+1))
	// No body follows: a reader that tried to read it would see EOF instead.
	_, err := ReadMessage(bufio.NewReader(&buf))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("read of an oversized frame: %v, want ErrTooLarge", err)
	}
	buf.Reset()
	buf.Write(binary.AppendUvarint(nil, 1<<62))
	if _, err := ReadMessage(bufio.NewReader(&buf)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("read of a huge length: %v, want ErrTooLarge", err)
	}
	big := &Message{Kind: KindSignal, Type: "offer", Payload: json.RawMessage(`"` + strings.Repeat("a", MaxMessageSize) + `"`)}
	if err := WriteMessage(io.Discard, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("write of an oversized message: %v, want ErrTooLarge", err)
	}
	if _, err := DecodeMessage(make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("decode of an oversized body: %v, want ErrTooLarge", err)
	}
}

func TestTruncatedFrame(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMessage(&buf, &Message{Kind: KindLeave, Reason: "bye"}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for n := 1; n < len(b); n++ {
		_, err := ReadMessage(bufio.NewReader(bytes.NewReader(b[:n])))
		if err == nil || err == io.EOF {
			t.Errorf("frame cut to %d of %d bytes: %v, want an error other than a clean EOF", n, len(b), err)
		}
	}
}

// FuzzReadMessage feeds arbitrary bytes to the frame reader: it must never
// panic, never return a message that does not validate, and anything it
// accepts must survive a write and read back unchanged.
func FuzzReadMessage(f *testing.F) {
	for _, m := range []*Message{
		{Kind: KindJoin, Room: "demo", Stream: "sample", Transport: "srtp", ICEServers: []ICEServer{{URLs: []string{"stun:x"}}}},
		{Kind: KindSignal, Type: "answer", SID: "1", Payload: json.RawMessage(`{"type":"answer","sdp":"v=0"}`)},
		{Kind: KindLeave, Reason: "done"},
	} {
		var buf bytes.Buffer
		WriteMessage(&buf, m)
		f.Add(buf.Bytes())
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte("\x05hello"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for range 8 {
			m, err := ReadMessage(r)
			if err != nil {
				return
			}
			if err := m.Validate(); err != nil {
				t.Fatalf("ReadMessage returned an invalid message: %v", err)
			}
			var buf bytes.Buffer
			if err := WriteMessage(&buf, m); err != nil {
				// Re-encoding may grow a message (escaping) past the cap.
				if errors.Is(err, ErrTooLarge) {
					continue
				}
				t.Fatalf("re-encode: %v", err)
			}
			if _, err := ReadMessage(bufio.NewReader(&buf)); err != nil {
				t.Fatalf("re-read: %v", err)
			}
		}
	})
}
