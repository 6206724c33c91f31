package control

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/stallproxy"
	"github.com/ersmesh/ersmesh/node"
	"github.com/ersmesh/ersmesh/node/media"
)

// TestSlowStartBlocksNoCommand: while a room's publication waits on a
// silent path to the DHT (a restored room, then a startWebRTC), listConfig
// is answered and stopWebRTC cuts the start short, instead of both waiting
// behind the DHT.
func TestSlowStartBlocksNoCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, proxy := stallproxy.Mesh(t, ctx)
	stream, err := media.NewSampleStream("sample", quiet)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := node.New(ctx, node.Config{Mesh: h, Streams: map[string]*media.Stream{"sample": stream}, Logger: quiet})
	if err != nil {
		stream.Close()
		t.Fatal(err)
	}
	defer dev.Close()
	state := filepath.Join(t.TempDir(), "state.json")
	if err := saveState(state, []WebRTCConfig{{ConfigID: 3, RoomID: "saved", KeepAlive: true}}); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Device: dev, StateFile: state, Logger: quiet, StartTimeout: 45 * time.Second, RetryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	proxy.Stall()

	// publishing waits until room is marked on the device (its record
	// being published), failing if done ends first.
	publishing := func(room string, done <-chan struct{}) {
		t.Helper()
		for !slices.Contains(dev.Rooms(), room) {
			select {
			case <-done:
				t.Fatalf("the start of %s ended before the stalled publication could", room)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	stillRunning := func(what string, done <-chan struct{}) {
		t.Helper()
		select {
		case <-done:
			t.Fatalf("%s ended first: the command waited for the DHT", what)
		default:
		}
	}
	wait := func(what string, done <-chan struct{}) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s was not cut short", what)
		}
	}

	restored := make(chan struct{})
	go func() { defer close(restored); c.Restore(ctx) }()
	publishing("saved", restored)
	if s := listed(ctx, c); !strings.Contains(s, `"configId":3`) {
		t.Errorf("the restored room is not listed while it starts: %s", s)
	}
	stillRunning("the restored room's start", restored)

	var slowRep Reply
	slow := make(chan struct{})
	go func() {
		defer close(slow)
		slowRep = c.Do(ctx, Command{Name: CmdStartWebRTC, Params: map[string]string{"roomid": "slow"}})
	}()
	publishing("slow", slow)
	if s := listed(ctx, c); strings.Contains(s, `"slow"`) {
		t.Errorf("a startWebRTC not answered yet is listed: %s", s)
	}
	if rep := c.Do(ctx, Command{Name: CmdStartWebRTC, Params: map[string]string{"roomid": "slow"}}); rep.OK() {
		t.Errorf("a second start of a room being started: %+v", rep)
	}
	stillRunning("startWebRTC", slow)
	if rep := c.Do(ctx, Command{Name: CmdStopWebRTC, Params: map[string]string{"roomid": "slow"}}); !rep.OK() {
		t.Fatalf("stop of a room being started: %+v", rep)
	}
	wait("startWebRTC", slow)
	if slowRep.OK() || !strings.Contains(slowRep.Description, "stopped while it started") {
		t.Errorf("startWebRTC stopped meanwhile answered %+v", slowRep)
	}

	if rep := c.Do(ctx, Command{Name: CmdStopWebRTC, Params: map[string]string{"configid": "3"}}); !rep.OK() {
		t.Fatalf("stop of the restored room being started: %+v", rep)
	}
	wait("Restore", restored)
	if rooms := dev.Rooms(); len(rooms) != 0 {
		t.Errorf("rooms stopped while they started are served: %v", rooms)
	}
	if saved, err := loadState(state); err != nil || len(saved) != 0 {
		t.Errorf("state after the stop: %v %v, want empty", saved, err)
	}
	if s := listed(ctx, c); strings.Contains(s, "configId") {
		t.Errorf("listed after every stop: %s", s)
	}
}

// listed is c's listConfig answer as JSON.
func listed(ctx context.Context, c *Controller) string {
	b, _ := json.Marshal(c.Do(ctx, Command{Name: CmdListConfig}))
	return string(b)
}
