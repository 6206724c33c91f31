package demo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/browsertest"
)

// BenchmarkJoinToFirstFrame measures, in headless Chromium, the time from
// the player's join to the first video frame it shows, over the whole demo
// (Socket.IO bridge, libp2p, device, ICE/DTLS, then media), for each
// transport. Each sub-benchmark makes at least 20 joins and reports the
// median and the 95th percentile, and the median from navigation (the
// page's time origin) to the first frame with the player's stages on the
// way (page: navigation to the player's start; then the time in each stage
// of the player's timeline).
func BenchmarkJoinToFirstFrame(b *testing.B) {
	for _, transport := range []string{"fmp4", "srtp"} {
		b.Run(transport, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			d, err := Start(ctx, Config{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			br := browsertest.New(b)
			runs := max(b.N, 20)
			var times, navs []float64
			stages := map[string][]float64{}
			var order []string
			marks := map[string][]float64{}
			var markOrder []string
			b.ResetTimer()
			for i := range runs {
				if err := browsertest.Navigate(br, "about:blank"); err != nil {
					b.Fatal(err)
				}
				if err := browsertest.Navigate(br, d.URL+"&transport="+transport); err != nil {
					b.Fatal(err)
				}
				browsertest.WaitFor(br, b, 20*time.Second, `window.ersPlayer && ersPlayer.timing.firstFrame > 0`)
				run, err := browsertest.Eval[struct {
					Join, Frame, Start float64
					Timeline           []struct {
						Stage, Message string
						Start          float64
					}
					Marks [][2]any
				}](br, `({join: ersPlayer.timing.join, frame: ersPlayer.timing.firstFrame, start: ersPlayer._timelineStart,
					timeline: ersPlayer.timeline.map((e) => ({stage: e.stage, message: e.message, start: e.start})),
					marks: Object.entries(ersPlayer.timing.marks || {})})`)
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 && transport == "fmp4" {
					snap, _ := browsertest.Eval[bool](br, `ersPlayer.peerConnection.localDescription.sdp.includes('a=sctp-init:')`)
					b.Logf("the browser's answer carries a=sctp-init (SNAP): %v", snap)
				}
				ms := run.Frame - run.Join
				if i > 0 { // the first run warms up the page cache and the DHT lookup
					times = append(times, ms)
					navs = append(navs, run.Frame)
					at := func(name string, ms float64) {
						if _, ok := stages[name]; !ok {
							order = append(order, name)
						}
						stages[name] = append(stages[name], ms)
					}
					at("page", run.Start)
					for _, m := range run.Marks {
						name, _ := m[0].(string)
						ms, _ := m[1].(float64)
						if _, ok := marks[name]; !ok {
							markOrder = append(markOrder, name)
						}
						marks[name] = append(marks[name], ms)
					}
					for j, e := range run.Timeline {
						end := run.Frame - run.Start
						if j+1 < len(run.Timeline) {
							end = run.Timeline[j+1].Start
						}
						if e.Stage != "playing" {
							at(e.Stage, end-e.Start)
						}
						if e.Stage == "waiting" {
							b.Logf("run %d: the player waited %.0f ms: %s", i, end-e.Start, e.Message)
						}
					}
				}
				if transport == "srtp" && ms > 200 {
					// Why was this one slow? The receiver's own account.
					st, _ := browsertest.Eval[string](br, `(async () => {
						const r = [];
						(await ersPlayer.peerConnection.getStats()).forEach((s) => {
							if (s.type === 'inbound-rtp' && s.kind === 'video') r.push(JSON.stringify({pli: s.pliCount, fir: s.firCount, nack: s.nackCount, dec: s.framesDecoded, drop: s.framesDropped, key: s.keyFramesDecoded, recv: s.framesReceived}));
						});
						return r.join(' ');
					})()`)
					b.Logf("slow srtp join (%.0f ms): %s", ms, st)
				}
			}
			b.StopTimer()
			sort.Float64s(times)
			b.ReportMetric(times[len(times)/2], "ms-median")
			b.ReportMetric(times[(len(times)*95+99)/100-1], "ms-p95")
			b.ReportMetric(median(navs), "ms-nav-median")
			for _, st := range order {
				b.Logf("%s: stage %q median %.0f ms", transport, st, median(stages[st]))
			}
			// The steps from the join, in the order first seen: where the
			// join's time goes (the marks of the player's timing).
			steps := ""
			for _, m := range markOrder {
				steps += fmt.Sprintf(" %s %.0f", m, median(marks[m]))
			}
			b.Logf("%s: from the join, medians (ms):%s, first frame %.0f", transport, steps, median(times))
			b.ReportMetric(0, "ns/op")
			b.Logf("%s join to first frame over %d runs (ms): %s", transport, len(times), fmt.Sprint(times))
		})
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	return v[len(v)/2]
}
