package go2rtcbench

import (
	"context"
	"os"
	"testing"
	"time"
)

// optIn is the variable that turns TestTwoViewersEach on. go2rtc is a
// benchmark dependency only: CI does not build it.
const optIn = "ERSMESH_GO2RTC_BENCH"

// TestTwoViewersEach runs the whole comparison small: go2rtc built (or
// taken from the cache), the clip fed into its RTSP server, the ersmesh
// device reading it, two WHEP viewers of each getting frames while each
// server's CPU is read, and one first frame of each player in Chromium.
func TestTwoViewersEach(t *testing.T) {
	if os.Getenv(optIn) != "1" {
		t.Skipf("set %s=1 to run it (it builds go2rtc %s, a benchmark dependency CI does not have); %s=%q", optIn, Version, optIn, os.Getenv(optIn))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Viewers: []int{2}, Settle: 3 * time.Second, Measure: 3 * time.Second, FirstFrameRuns: 1, Progress: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 1 {
		t.Fatalf("steps %+v, want one", res.Steps)
	}
	for name, st := range map[string]struct {
		frames int64
		cpu    float64
	}{"go2rtc": {res.Steps[0].Go2RTC.MinFrames, res.Steps[0].Go2RTC.CPUPercent}, "ersmesh": {res.Steps[0].Ersmesh.MinFrames, res.Steps[0].Ersmesh.CPUPercent}} {
		// 30 frame/s over 3 s: every viewer gets most of 90 frames.
		if st.frames < 30 || st.cpu <= 0 {
			t.Errorf("%s: fewest frames %d, CPU %.1f %%: want frames to every viewer and its CPU read", name, st.frames, st.cpu)
		}
	}
	if len(res.FirstFrame) != 3 {
		t.Fatalf("first frame of %d players, want 3", len(res.FirstFrame))
	}
	for _, f := range res.FirstFrame {
		if len(f.Runs) != 1 || f.Runs[0] <= 0 {
			t.Errorf("%s: first frame %v, want one positive time", f.Player, f.Runs)
		}
	}
}
