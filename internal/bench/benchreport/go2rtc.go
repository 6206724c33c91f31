package benchreport

import (
	"fmt"
	"strings"

	"github.com/ersmesh/ersmesh/internal/bench/devicebench"
	"github.com/ersmesh/ersmesh/internal/bench/go2rtcbench"
)

// go2rtc writes the side-by-side comparison with go2rtc.
func (d *doc) go2rtc(e *Envelope[*go2rtcbench.Result]) {
	d.f("\n## Side by side with go2rtc: fan-out and first frame\n\n")
	if e == nil {
		d.f("No results: run `go run ./cmd/ersmesh-bench go2rtc --out docs` (it builds go2rtc %s from its module on first use).\n", go2rtcbench.Version)
		return
	}
	r := e.Result
	d.f("Command: `%s` (results written %s, load average %s; machine as above; run at normal\n", e.Command, e.Machine.Date, e.Machine.LoadAvg)
	d.f("priority, not under `nice`, so that neither server falls behind the other users for lack of a\n")
	d.f("turn)\n\n")
	d.f("One run, one stream, both servers. ffmpeg publishes a clip in a loop (`-re -stream_loop -1`,\n")
	d.f("RTSP over TCP) to an RTSP server in the benchmark's process (gortsplib, which the device's own\n")
	d.f("RTSP source uses too); go2rtc (`streams: cam: rtsp://...`) and the ersmesh device (`--stream\n")
	d.f("cam=rtsp://...`) are both RTSP clients of it, as each would be of a camera. The clip: %s.\n\n", r.Clip)
	d.f("go2rtc is `%s`, built from its module by the benchmark (`go mod download`, copied, its V4L2\n", r.Go2RTC)
	d.f("generator `pkg/v4l2/device/videodev2_arch.c` removed, `go build` with its own go.mod: ersmesh's\n")
	d.f("go.mod does not name it), every listener on loopback, no STUN server. The ersmesh device runs as\n")
	d.f("its own process (`ersmesh device`, built from this checkout); its bootstrap node and bridge run in\n")
	d.f("the benchmark's process and only relay signalling.\n")
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
	d.f("core* is N ÷ (CPU seconds ÷ wall seconds), the server's whole use included. With no viewer go2rtc\n")
	d.f("closes its RTSP source and idles at %.1f %% of a core; the device keeps reading its camera and idles\n", r.Go2RTCIdle)
	d.f("at %.1f %%.\n\n", r.ErsmeshIdle)
	d.f("*Sent per viewer* is each server's own count of the media bytes it wrote to its viewers (RTP header\n")
	d.f("and payload before SRTP: go2rtc's `bytes_send` of its WebRTC consumers in `/api/streams`, the\n")
	d.f("device's `ersmesh_device_stream_sent_bytes_total` in `/metrics`) over the measurement. A server\n")
	d.f("short of CPU falls behind or skips frames and so spends less per viewer; *counting only what was\n")
	d.f("sent* scales viewers per core by sent ÷ what the same server sends one viewer alone (go2rtc %.0f,\n", r.Go2RTCOne.SentKbps)
	d.f("the device %.0f kbit/s), so that neither is credited for what it did not send.\n\n", r.ErsmeshOne.SentKbps)
	d.f("| viewers | go2rtc viewers/core | ersmesh viewers/core | ersmesh ÷ go2rtc | go2rtc sent per viewer | ersmesh sent per viewer | counting only what was sent: go2rtc | ersmesh | ersmesh ÷ go2rtc | load average after |\n")
	d.f("|---|---|---|---|---|---|---|---|---|---|\n")
	var failures, counters []string
	for _, p := range r.Steps {
		g, m := go2rtcbench.PerCore(p.Go2RTC), go2rtcbench.PerCore(p.Ersmesh)
		gf, mf := go2rtcbench.PerCoreFull(p.Go2RTC, r.Go2RTCOne), go2rtcbench.PerCoreFull(p.Ersmesh, r.ErsmeshOne)
		d.f("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p.Viewers, perCore(g, p.Go2RTC), perCore(m, p.Ersmesh), ratio(m, g),
			kbps(p.Go2RTC.SentKbps), kbps(p.Ersmesh.SentKbps), perCore(gf, p.Go2RTC), perCore(mf, p.Ersmesh), ratio(mf, gf), p.LoadAvg)
		for _, c := range []struct {
			name string
			st   devicebench.Step
		}{{"go2rtc", p.Go2RTC}, {"the device", p.Ersmesh}} {
			if c.st.SentKbps > 0 && c.st.SentKbps < c.st.RxKbps/2 {
				counters = append(counters, fmt.Sprintf("%s at %d viewers counted %.0f kbit/s sent per viewer while its receivers got %.0f", c.name, p.Viewers, c.st.SentKbps, c.st.RxKbps))
			}
		}
		for _, f := range []struct{ name, err string }{{"go2rtc", p.Go2RTCError}, {"the ersmesh device", p.ErsmeshError}} {
			if f.err != "" {
				failures = append(failures, fmt.Sprintf("%s with %d viewers: `%s`", f.name, p.Viewers, f.err))
			}
		}
	}
	if p, ok := largestFull(r); ok {
		g, m := go2rtcbench.PerCore(p.Go2RTC), go2rtcbench.PerCore(p.Ersmesh)
		d.f("\n**The ratio:** at %d viewers, the largest count both servers took whole and sent in full (at least\n", p.Viewers)
		d.f("95 %% of what each sends one viewer), the device serves %.0f viewers per core and go2rtc %.0f: %.2f\n", m, g, m/g)
		d.f("times go2rtc's figure, on the same stream to the same receivers.\n")
	}
	if len(counters) > 0 {
		d.f("\nA server's own count of what it sent disagrees with what its receivers got (%s): its counter\n", strings.Join(counters, "; "))
		d.f("fell short, not the stream, so the *counting only what was sent* figures of that row do not hold.\n")
	}
	if len(failures) > 0 {
		d.f("\nNot measured (fewer than 90 %% of the viewers connected, three tries each): %s.\n", strings.Join(failures, "; "))
	}
	if len(r.Steps) > 0 {
		d.f("\nWhat the receivers got over the same measurements (received per viewer; the fewest video frames\n")
		d.f("one receiver got, from the RTP marker bits; the share of video packets missing from the sequence\n")
		d.f("numbers, which both servers number per viewer, so a skipped frame is not a gap: *lost* is loss\n")
		d.f("between the server's socket and the receiver's, on a loaded machine mostly the receivers' socket\n")
		d.f("buffers overflowing while the benchmark process waits for a core). Both servers answer the\n")
		d.f("receivers' NACKs with resends (pion's default interceptors in go2rtc, the device's own): resends\n")
		d.f("are in *received* (which can so exceed *sent*) but neither undo a gap nor count a frame twice.\n")
		d.f("*Source drops* are the stream's packets the RTSP server could not hand to that server during its\n")
		d.f("step (its queue to that reader, 4,096 packets, full): a server that does not read its camera in\n")
		d.f("time. *Failed\n")
		d.f("joins* are receivers' tries to connect that did not within 30 s and were tried again (three\n")
		d.f("tries each). *Receive-buffer drops* are the kernel's count of UDP datagrams dropped at full\n")
		d.f("socket receive buffers (`RcvbufErrors` in `/proc/net/snmp`) over the measurement, for the whole\n")
		d.f("machine: the benchmark's receivers falling behind, and anything else the other users ran.\n\n")
		d.f("| viewers | go2rtc: received, fewest frames, lost | ersmesh: received, fewest frames, lost | source drops: go2rtc | ersmesh | failed joins: go2rtc | ersmesh | receive-buffer drops: go2rtc | ersmesh |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range r.Steps {
			d.f("| %d | %s | %s | %d | %d | %d | %d | %s | %s |\n", p.Viewers, received(p.Go2RTC), received(p.Ersmesh),
				p.Go2RTCSourceDrops, p.ErsmeshSourceDrops, p.Go2RTC.FailedJoins, p.Ersmesh.FailedJoins,
				count(p.Go2RTC.RcvbufDrops), count(p.Ersmesh.RcvbufDrops))
		}
		d.f("\nMeasured over %.0f s per server and count (%.0f frames of the clip). The machine is shared: the\n", r.Steps[0].Go2RTC.Seconds, 30*r.Steps[0].Go2RTC.Seconds)
		d.f("ratios, both servers measured minutes apart on the same machine, are the figures to quote, not\n")
		d.f("the absolute counts.\n")
		if r.ReceiveBuffer == 0 {
			d.f("\n*Lost* in this run is the receivers' own: all receivers run in the benchmark's one process with\n")
			d.f("the operating system's socket receive buffers (208 KiB here), which overflowed while the loaded\n")
			d.f("machine starved that process, whichever server sent. Measured in a network namespace of its own,\n")
			d.f("the device's loss at 100 viewers was all datagrams the kernel dropped at the receivers' full\n")
			d.f("buffers, with its batched sends as without them, and none with 4 MiB buffers\n")
			d.f("(docs/media-benchmarks.md, \"Where the viewers' loss comes from\"). The receivers now ask for\n")
			d.f("4 MiB (`devicebench.ReceiveBuffer`); this table was measured before.\n")
		} else {
			d.f("\nThe receivers' sockets asked for %d KiB receive buffers (`devicebench.ReceiveBuffer`, capped by\n", r.ReceiveBuffer>>10)
			d.f("`net.core.rmem_max`): with the operating system's 208 KiB their own drops, in a process starved\n")
			d.f("of CPU, were counted as loss (docs/media-benchmarks.md, \"Where the viewers' loss comes from\").\n")
		}
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
	if st.Viewers == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f kbit/s, %d, %.2f %%", st.RxKbps, st.MinFrames, st.LostPercent)
}

// largestFull is the step with the most viewers at which both servers
// took every viewer and sent at least 95 % of the stream to each.
func largestFull(r *go2rtcbench.Result) (go2rtcbench.Pair, bool) {
	full := func(st, one devicebench.Step) bool {
		return st.Viewers > 0 && st.Unconnected == 0 && one.SentKbps > 0 && st.SentKbps >= 0.95*one.SentKbps
	}
	var best go2rtcbench.Pair
	ok := false
	for _, p := range r.Steps {
		if full(p.Go2RTC, r.Go2RTCOne) && full(p.Ersmesh, r.ErsmeshOne) && go2rtcbench.PerCore(p.Go2RTC) > 0 && p.Viewers > best.Viewers {
			best, ok = p, true
		}
	}
	return best, ok
}

// perCore is a viewers-per-core figure of step st: "–" if not measured,
// and how many viewers connected if not all.
func perCore(v float64, st devicebench.Step) string {
	if v <= 0 {
		return "–"
	}
	if st.Unconnected > 0 {
		return fmt.Sprintf("%.0f (%d of %d connected)", v, st.Viewers, st.Viewers+st.Unconnected)
	}
	return fmt.Sprintf("%.0f", v)
}

func kbps(v float64) string {
	if v <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f kbit/s", v)
}

// count is n, or "–" for unknown (negative).
func count(n int64) string {
	if n < 0 {
		return "–"
	}
	return fmt.Sprint(n)
}

func ratio(a, b float64) string {
	if b <= 0 || a <= 0 {
		return "–"
	}
	return fmt.Sprintf("**%.2f**", a/b)
}
