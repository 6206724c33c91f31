package bridgeload

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// targetEnv makes the test binary the bridge under test: Run starts
// os.Args[0] with it set.
const targetEnv = "ERSMESH_BRIDGELOAD_TARGET"

func TestMain(m *testing.M) {
	if os.Getenv(targetEnv) == "1" {
		os.Exit(serveTargetMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func serveTargetMain(args []string) int {
	var boot []ma.Multiaddr
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "--bootstrap" {
			a, err := ma.NewMultiaddr(args[i+1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			boot = append(boot, a)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := ServeTarget(ctx, boot, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestSmallLoad runs every phase with a handful of sessions: it checks that
// the harness measures what it claims (every join answered by the device,
// messages arriving with a latency, memory and CPU read from the child), not
// how fast the bridge is.
func TestSmallLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	t.Setenv(targetEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Exe: os.Args[0], Sessions: 20, JoinWorkers: 4, JoinTime: 500 * time.Millisecond,
		MsgSessions: 4, MsgRate: 40, MsgTime: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Joins < 4 || res.JoinFailures != 0 {
		t.Errorf("%d joins, %d failed (%s)", res.Joins, res.JoinFailures, res.JoinError)
	}
	if res.BaseRSSMiB <= 0 || res.IdleRSSMiB <= 0 || res.IdleHeapMiB <= 0 || res.Goroutines < 20 {
		t.Errorf("bridge memory not read: %+v", res)
	}
	// Run checks that every message sent arrived; at 40/s for 1 s some
	// ticks may be lost on a busy machine, but not most.
	if res.MsgLatency.Count < 10 || res.MsgLatency.Median <= 0 {
		t.Errorf("message latency: %+v, want about 40 samples", res.MsgLatency)
	}
	if res.Msgs == 0 {
		t.Error("no message reached the device in the unthrottled run")
	}
}
