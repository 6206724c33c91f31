package node

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/signalwire"
)

// eventLog collects a device's events.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) add(ev Event) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
}

// types returns the event types seen so far for room.
func (l *eventLog) types(room string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, ev := range l.evs {
		if ev.Room == room {
			out = append(out, ev.Type)
		}
	}
	return out
}

// TestStartStopRoom starts a room at run time, with a secret, serves a
// viewer in it, refuses a second start, then stops it: the viewer is told,
// new joins are refused, and every step is an event.
func TestStartStopRoom(t *testing.T) {
	var events eventLog
	tm := newTestMeshWith(t, func(c *Config) { c.OnEvent = events.add })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tm.dev.StartRoom(ctx, "porch", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := tm.dev.StartRoom(ctx, "porch", ""); !errors.Is(err, ErrRoomStarted) {
		t.Fatalf("second start: %v, want ErrRoomStarted", err)
	}
	if err := tm.dev.StartRoom(ctx, "lobby", ""); !errors.Is(err, ErrRoomStarted) {
		t.Fatalf("start of a configured room: %v, want ErrRoomStarted", err)
	}
	if err := tm.dev.StartRoom(ctx, "bad name", ""); err == nil {
		t.Fatal("started a room with a bad name")
	}
	if got := tm.dev.Rooms(); !slices.Equal(got, []string{"lobby", "porch"}) {
		t.Fatalf("Rooms = %v", got)
	}

	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "v1", Room: "porch", Stream: "cam", Transport: "srtp"})
	if m, err := c.Recv(5 * time.Second); err != nil || m.Kind != signalwire.KindAccept {
		t.Fatalf("join: %v %+v", err, m)
	}
	// The token became the room's secret: the device asks for the proof.
	m, err := c.Recv(5 * time.Second)
	if err != nil || m.Kind != signalwire.KindSignal || m.Type != "challenge" {
		t.Fatalf("after accept: %v %+v, want a challenge", err, m)
	}

	if err := tm.dev.StopRoom("porch"); err != nil {
		t.Fatal(err)
	}
	if err := tm.dev.StopRoom("porch"); !errors.Is(err, ErrRoomNotStarted) {
		t.Fatalf("second stop: %v, want ErrRoomNotStarted", err)
	}
	// The waiting viewer is let go (it was still proving the secret, so
	// the proof wait ends with the stream).
	for {
		m, err := c.Recv(5 * time.Second)
		if err != nil || m.Kind == signalwire.KindLeave {
			break
		}
	}
	// The record is still in the DHT, but the device refuses the room.
	c2 := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "v2", Room: "porch", Stream: "cam"})
	if m, err := c2.Recv(5 * time.Second); err != nil || m.Kind != signalwire.KindReject || m.Code != signalwire.CodeNotFound {
		t.Fatalf("join of a stopped room: %v %+v, want a not-found reject", err, m)
	}
	if got := tm.dev.Rooms(); !slices.Equal(got, []string{"lobby"}) {
		t.Fatalf("Rooms after stop = %v", got)
	}
	if got := events.types("porch"); !slices.Equal(got, []string{EventStarted, EventStopped}) {
		t.Errorf("porch events: %v", got)
	}
	if got := events.types("lobby"); !slices.Equal(got, []string{EventStarted}) {
		t.Errorf("lobby events: %v", got)
	}
}

// TestStopRoomEndsSessions stops a room while a viewer has a
// PeerConnection: the session ends with a leave and its events close.
func TestStopRoomEndsSessions(t *testing.T) {
	var events eventLog
	tm := newTestMeshWith(t, func(c *Config) { c.OnEvent = events.add })
	c := tm.open(t, &signalwire.Message{Kind: signalwire.KindJoin, Session: "v1", Room: "lobby", Stream: "cam", Transport: "srtp"})
	for {
		m, err := c.Recv(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Kind == signalwire.KindSignal && m.Type == "offer" {
			break
		}
	}
	if err := tm.dev.StopRoom("lobby"); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := c.Recv(5 * time.Second)
		if err != nil {
			t.Fatalf("no leave after StopRoom: %v", err)
		}
		if m.Kind == signalwire.KindLeave {
			if m.Reason != "room stopped on the device" {
				t.Errorf("leave reason %q", m.Reason)
			}
			break
		}
	}
	want := []string{EventStarted, EventPeerConnectionCreated, EventStopped, EventPeerConnectionClosed}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(events.types("lobby"), want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := events.types("lobby"); !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}
