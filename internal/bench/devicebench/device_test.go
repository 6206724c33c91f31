package devicebench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
)

// targetEnv makes the test binary the system under test: Run starts
// os.Args[0] with it set.
const targetEnv = "ERSMESH_DEVICEBENCH_TARGET"

func TestMain(m *testing.M) {
	if os.Getenv(targetEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := ServeTarget(ctx, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTwoViewers checks the harness: two pion viewers get video through
// the bridge, the child's CPU is read, and every viewer closes cleanly.
func TestTwoViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv(targetEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Exe: os.Args[0], Viewers: []int{2}, Settle: 500 * time.Millisecond, Measure: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 1 {
		t.Fatalf("steps %+v", res.Steps)
	}
	st := res.Steps[0]
	if st.RxKbps < 50 || st.RxShare < 0.5 || st.RSSMiB <= 0 {
		t.Errorf("step %+v: want video to every viewer and the child's memory read", st)
	}
}

// TestJanusTwoViewers checks the Janus side of the harness. Janus is a
// point of comparison, not part of ersmesh: .ci/run installs it, and the
// test skips only on a machine without it outside CI.
func TestJanusTwoViewers(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := RunJanus(ctx, Config{Viewers: []int{2}, Settle: 500 * time.Millisecond, Measure: time.Second})
	if errors.Is(err, ErrNoJanus) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Janus is needed in CI (.ci/run installs it): %v", err)
		}
		t.Skipf("Janus is not installed (apt-get install janus), and not in CI: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Steps[0]; st.RxKbps < 50 || st.RxShare < 0.5 || st.RSSMiB <= 0 {
		t.Errorf("step %+v: want video to every viewer and Janus's memory read", st)
	}
}

// TestWHEPStep checks the WHEP side of the harness, which comparisons with
// other servers use (package go2rtcbench): two pion WHEP viewers of the
// demo's bridge get video frames without loss while the child's CPU is
// read, and they leave (DELETE) when the step ends.
func TestWHEPStep(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Setenv(targetEnv, "1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	child, err := benchproc.Start(ctx, os.Args[0], nil, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer child.Stop()
	base, room, stream := child.Ready[0], child.Ready[1], child.Ready[2]
	target := Target{Name: "demo", PID: child.PID(), WHEP: base + "/whep/" + room + "/" + stream}
	st, err := MeasureStep(ctx, webrtc.NewAPI(), target, 2, 500*time.Millisecond, 2*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The sample clip is 25 frame/s or more: two seconds bring dozens of
	// frames to each viewer, whatever the machine's load.
	if st.Viewers != 2 || st.MinFrames < 10 || st.RxKbps < 50 || st.CPUPercent <= 0 || st.RSSMiB <= 0 {
		t.Errorf("step %+v: want frames to both viewers and the child's CPU and memory read", st)
	}
	if st.LostPercent > 5 {
		t.Errorf("%.1f %% of the video lost on loopback", st.LostPercent)
	}
}
