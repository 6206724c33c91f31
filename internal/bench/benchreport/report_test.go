package benchreport

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ersmesh/ersmesh/internal/bench/benchstat"
	"github.com/ersmesh/ersmesh/internal/bench/bridgeload"
	"github.com/ersmesh/ersmesh/internal/bench/devicebench"
	"github.com/ersmesh/ersmesh/internal/bench/go2rtcbench"
	"github.com/ersmesh/ersmesh/internal/bench/meshsim"
	"github.com/ersmesh/ersmesh/internal/bench/playerbench"
)

// TestGenerate writes a report from made-up results and checks that the
// figures and the verdicts on the targets follow from them.
func TestGenerate(t *testing.T) {
	out := t.TempDir()
	ops := func(ms ...float64) []meshsim.Op {
		var o []meshsim.Op
		for _, m := range ms {
			o = append(o, meshsim.Op{Millis: m, Msgs: 10, Hops: 1, OK: true})
		}
		return o
	}
	mesh := []*meshsim.Result{{
		N: 500, LatencyMillis: 40, HeapMiB: 1000, Publish: ops(400, 500), Resolve: ops(150, 170, 500),
		Churn:   []meshsim.Round{{AtMillis: 0, Lookups: ops(100)}},
		Offline: meshsim.Offline{TTLMillis: 15000, ExpiresAfter: 14000, GoneAfter: 14300},
	}}
	if err := Write(out, MeshFile, "ersmesh-bench mesh --n 500", mesh); err != nil {
		t.Fatal(err)
	}
	br := &bridgeload.Result{GOMAXPROCS: 1, Sessions: 10000, IdleRSSMiB: 612, JoinsPerSecond: 2500, MsgLatencies: []float64{0.2, 0.3, 1.5}}
	if err := Write(out, BridgeFile, "ersmesh-bench bridge", br); err != nil {
		t.Fatal(err)
	}
	pl := &playerbench.Result{Cold: []float64{700, 800}, Warm: []float64{600, 650}}
	pl.ColdSummary, pl.WarmSummary = benchstat.Summarize(pl.Cold), benchstat.Summarize(pl.Warm)
	if err := Write(out, PlayerFile, "ersmesh-bench player", pl); err != nil {
		t.Fatal(err)
	}
	step := func(n int, cpu, sent float64) devicebench.Step {
		return devicebench.Step{Viewers: n, CPUPercent: cpu, RxKbps: 2100, MinFrames: 300, LostPercent: 0.5, SentKbps: sent}
	}
	g2 := &go2rtcbench.Result{Go2RTC: "github.com/AlexxIT/go2rtc@v1.9.9",
		Go2RTCOne: step(1, 1, 2000), ErsmeshOne: step(1, 1, 2200),
		// go2rtc sends all; the device half of the stream.
		Steps: []go2rtcbench.Pair{{Viewers: 100, Go2RTC: step(100, 40, 2000), Ersmesh: step(100, 20, 1100), LoadAvg: "3.00 2.00 1.00"},
			{Viewers: 200, Go2RTCError: "go2rtc with 200 viewers: 150 connected: no media", Ersmesh: step(200, 40, 2200), LoadAvg: "4.00 3.00 2.00"}},
		FirstFrame: []go2rtcbench.FirstFrame{{Player: "go2rtc (its webrtc.html)", Summary: benchstat.Summarize([]float64{1500, 1600, 1400})}},
	}
	if err := Write(out, Go2RTCFile, "ersmesh-bench go2rtc", g2); err != nil {
		t.Fatal(err)
	}
	if err := Generate(out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"| cold resolve median ≤ 3 round trips at N = 500 | 170 ms = 2.1 round trips of 80 ms at N = 500 | **met** |",
		"bridge RSS 612 MiB", "| **missed** |\n| ≥ 2,000 joins/s", // 612 MiB is over the 500 MiB target
		"Command: `ersmesh-bench mesh --n 500`",
		"| cold | 2 | 700 ms |",
		"![join to first frame](bench/player.png)",
		// 100 viewers on 40 % of a core is 250 per core; on 20 %, 500.
		// Counting only what was sent, the device's 500 is 250.
		"| 100 | 250 | 500 | **2.00** | 2000 kbit/s | 1100 kbit/s | 250 | 250 | **1.00** | 3.00 2.00 1.00 |",
		"| 100 | 2100 kbit/s, 300, 0.50 % | 2100 kbit/s, 300, 0.50 % | 0 | 0 | 0 | 0 | 0 | 0 |",
		"| go2rtc (its webrtc.html) | 3 | 1500 ms | 1400 ms | 1600 ms |",
		// go2rtc not measured at 200: its cells are empty, the device's are there.
		"| 200 | – | 500 | – | – | 2200 kbit/s | – | 500 | – | 4.00 3.00 2.00 |",
		"go2rtc with 200 viewers: `go2rtc with 200 viewers: 150 connected: no media`",

		"Command: `ersmesh-bench go2rtc`",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	// The device sent half the stream at 100 viewers and go2rtc was not
	// measured at 200: no count gives the headline ratio.
	if strings.Contains(md, "the largest count both servers took whole") {
		t.Errorf("the report quotes a go2rtc ratio at a count one server did not serve in full:\n%s", md)
	}
	for _, png := range []string{"mesh-latency.png", "mesh-churn.png", "bridge-latency.png", "player.png"} {
		if fi, err := os.Stat(filepath.Join(out, Dir, png)); err != nil || fi.Size() < 1000 {
			t.Errorf("plot %s: %v", png, err)
		}
	}
}
