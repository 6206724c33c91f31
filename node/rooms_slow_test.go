package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/stallproxy"
	"github.com/ersmesh/ersmesh/node/media"
)

// TestSlowPublishBlocksNothing: a room whose record cannot reach the DHT
// (the path to the device's only DHT peer went silent) holds up neither
// another room's stop nor Close; StopRoom and Close cut it short, and it
// is then neither served nor republished.
func TestSlowPublishBlocksNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, proxy := stallproxy.Mesh(t, ctx)
	stream, err := media.NewSampleStream("cam", quiet)
	if err != nil {
		t.Fatal(err)
	}
	var events eventLog
	dev, err := New(ctx, Config{Mesh: h, Streams: map[string]*media.Stream{"cam": stream}, Rooms: []string{"lobby"},
		OnEvent: events.add, Logger: quiet})
	if err != nil {
		stream.Close()
		t.Fatal(err)
	}
	defer dev.Close()

	proxy.Stall()
	start := func(room string) <-chan error {
		done := make(chan error, 1)
		go func() { done <- dev.StartRoom(ctx, room, "") }()
		// Marked (served, publishing) before the publication ends.
		for !slices.Contains(dev.Rooms(), room) {
			select {
			case err := <-done:
				t.Fatalf("start of %s ended (%v) before the stalled publication could", room, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		return done
	}
	result := func(done <-chan error) error {
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("a start cut short did not return")
			return nil
		}
	}

	slow := start("slow")
	if err := dev.StopRoom("lobby"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-slow:
		t.Fatalf("the stalled start ended (%v) before another room's stop returned: the stop waited for the DHT", err)
	default:
	}
	if err := dev.StopRoom("slow"); err != nil {
		t.Fatalf("stop of a room being started: %v", err)
	}
	if err := result(slow); !errors.Is(err, errRoomStopped) {
		t.Fatalf("start cut short by StopRoom: %v, want errRoomStopped", err)
	}
	if slices.Contains(dev.publisher.Rooms(), "slow") || slices.Contains(dev.Rooms(), "slow") {
		t.Fatalf("a room stopped while it started is still served or republished: %v %v", dev.Rooms(), dev.publisher.Rooms())
	}

	// Close cuts a start short rather than wait for it: the start then
	// fails as closed (had Close waited, it would have seen the DHT's
	// answer).
	slow2 := start("slow2")
	closed := make(chan error, 1)
	go func() { closed <- dev.Close() }()
	if err := result(slow2); !errors.Is(err, ErrDeviceClosed) {
		t.Fatalf("start during Close: %v, want ErrDeviceClosed", err)
	}
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, r := range []string{"slow", "slow2"} {
		if got := events.types(r); len(got) != 0 {
			t.Errorf("events of %s, which never started: %v", r, got)
		}
	}
	if got := events.types("lobby"); !slices.Equal(got, []string{EventStarted, EventStopped}) {
		t.Errorf("lobby events: %v", got)
	}
}
