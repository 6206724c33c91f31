package benchreport

import (
	"fmt"

	"github.com/ersmesh/ersmesh/internal/bench/devicebench"
	"github.com/ersmesh/ersmesh/internal/bench/go2rtcbench"
)

// go2rtc writes the side-by-side comparison with go2rtc.
func (d *doc) go2rtc(e *Envelope[*go2rtcbench.Result]) {
	d.f("\n## Side by side with go2rtc: fan-out and first frame\n\n")
	if e == nil {
		d.f("No results: run `go run ./cmd/ersmesh-bench go2rtc --out docs` (it builds go2rtc %s from its module on first use).\n\n", go2rtcbench.Version)
		return
	}
	r := e.Result
	d.f("Command: `%s` (results written %s, load average %s; machine as above)\n\n", e.Command, e.Machine.Date, e.Machine.LoadAvg)
	d.f("One run, one stream, both servers: ffmpeg publishes a clip in a loop (`-re -stream_loop -1`, RTSP\n")
	d.f("over TCP) into **go2rtc's own RTSP server**, and the ersmesh device reads it back from there as\n")
	d.f("`rtsp://` (so go2rtc also spends, in every figure, what it takes to relay the stream to that one\n")
	d.f("RTSP client). The clip: %s.\n\n", r.Clip)
	d.f("go2rtc is `%s`, built from its module by the benchmark (`go mod download`, copied, its V4L2\n", r.Go2RTC)
	d.f("generator `pkg/v4l2/device/videodev2_arch.c` removed, `go build` with its own go.mod: ersmesh's\n")
	d.f("go.mod does not name it), configured with every listener on loopback and no STUN server. The\n")
	d.f("ersmesh device runs as its own process (`ersmesh device --stream cam=rtsp://...`, built from this\n")
	d.f("checkout); its bootstrap node and bridge run in the benchmark's process and only relay signalling.\n")
	procs := "as the machine gives (unset)"
	if r.Procs > 0 {
		procs = fmt.Sprint(r.Procs)
	}
	d.f("GOMAXPROCS of both servers: %s.\n\n", procs)
	d.f("The receivers are the same pion WHEP clients for both (package `devicebench`): a recvonly offer\n")
	d.f("(video and audio) POSTed to go2rtc's `/api/webrtc?src=cam` and to the bridge's `/whep/bench/cam`.\n")
	d.f("For each count N the N receivers join one server, settle, and that server's CPU time\n")
	d.f("(`/proc/<pid>/stat`, utime + stime) is read over the measurement; then they leave and the other\n")
	d.f("server is measured the same way (which goes first alternates from count to count). *Viewers per\n")
	d.f("core* is N ÷ (CPU seconds ÷ wall seconds), the server's idle use included (go2rtc %.1f %% of a\n", r.Go2RTCIdle)
	d.f("core, the device %.1f %%, with the stream flowing and no viewer). Each receiver counts the video\n", r.ErsmeshIdle)
	d.f("frames (RTP marker bits) and packets it gets and the gaps in their sequence numbers: *fewest frames*\n")
	d.f("is the worst receiver's count over the measurement, *lost* the share of video packets missing.\n\n")
	d.f("| viewers | go2rtc viewers/core | ersmesh viewers/core | ersmesh ÷ go2rtc | go2rtc: kbit/s per viewer, fewest frames, lost | ersmesh: kbit/s per viewer, fewest frames, lost | load average after |\n")
	d.f("|---|---|---|---|---|---|---|\n")
	for _, p := range r.Steps {
		g, m := go2rtcbench.PerCore(p.Go2RTC), go2rtcbench.PerCore(p.Ersmesh)
		ratio := "–"
		if g > 0 {
			ratio = fmt.Sprintf("**%.2f**", m/g)
		}
		d.f("| %d | %.0f | %.0f | %s | %s | %s | %s |\n", p.Viewers, g, m, ratio, received(p.Go2RTC), received(p.Ersmesh), p.LoadAvg)
	}
	if len(r.Steps) > 0 {
		d.f("\nMeasured over %.0f s per server and count. The machine is shared: the ratio, measured\n", r.Steps[0].Go2RTC.Seconds)
		d.f("minutes apart on the same machine, is the figure to quote, not the absolute counts.\n")
	}
	if len(r.FirstFrame) > 0 {
		d.f("\n### First frame\n\n")
		d.f("Headless Chromium (`internal/browsertest`, started before the first run) loads each player, the\n")
		d.f("players in turn, %d times each after one load of each that is not counted. The time is\n", r.FirstFrame[0].Summary.Count)
		d.f("navigation start to the first frame the page's `<video>` presents, on the page's own clock\n")
		d.f("(`performance.now()` in a `requestVideoFrameCallback` installed before the page's scripts):\n")
		d.f("go2rtc's own WebRTC page (`/webrtc.html?src=cam`: a WebSocket, its offer, go2rtc's answer),\n")
		d.f("the ersmesh player from the bridge with `transport=fmp4` and with `transport=srtp`.\n\n")
		d.f("| player | runs | median | min | max |\n|---|---|---|---|---|\n")
		for _, f := range r.FirstFrame {
			d.f("| %s | %d | %.0f ms | %.0f ms | %.0f ms |\n", f.Player, f.Summary.Count, f.Summary.Median, f.Summary.Min, f.Summary.Max)
		}
		d.f("\ngo2rtc starts a new viewer at the camera's next keyframe (every 2 s in this clip); the ersmesh\n")
		d.f("device starts it on the keyframe it keeps.\n")
	}
}

// received is what the receivers of one step got.
func received(st devicebench.Step) string {
	return fmt.Sprintf("%.0f, %d, %.2f %%", st.RxKbps, st.MinFrames, st.LostPercent)
}
