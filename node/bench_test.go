package node

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/udpbatch"
)

// synthetic720p is a stream with the byte rate of 720p30 at 2 Mbit/s: a
// 60 KB keyframe every second and 7 KB frames between. The device never
// decodes video, so random slice data costs what a camera's would; SPS and
// PPS come from the sample clip so that the fMP4 init is valid.
func synthetic720p(tb testing.TB) *media.LoopSource {
	aus, err := media.SampleClip()
	if err != nil {
		tb.Fatal(err)
	}
	var sps, pps []byte
	for _, n := range aus[0].NALUs {
		switch n[0] & 0x1f {
		case 7:
			sps = n
		case 8:
			pps = n
		}
	}
	slice := func(typ byte, size int) []byte {
		b := make([]byte, size)
		rand.Read(b)
		b[0] = 0x60 | typ
		for i := 1; i < len(b); i++ {
			if b[i] < 4 { // no start-code emulation
				b[i] = 4
			}
		}
		return b
	}
	var video []media.AccessUnit
	for i := range 30 {
		if i == 0 {
			video = append(video, media.AccessUnit{NALUs: [][]byte{sps, pps, slice(5, 60000)}, IDR: true})
		} else {
			video = append(video, media.AccessUnit{NALUs: [][]byte{slice(1, 6400)}})
		}
	}
	return &media.LoopSource{Name: "synthetic 720p30 2 Mbit/s", Video: video, FrameDuration: time.Second / 30}
}

// withOpus adds to src Opus audio as a camera's: a 120-byte packet every
// 20 ms (48 kbit/s), random bytes (the device never decodes audio either).
func withOpus(src *media.LoopSource) *media.LoopSource {
	for range 50 {
		b := make([]byte, 120)
		rand.Read(b)
		src.Audio = append(src.Audio, media.AudioFrame{Data: b, Samples: 960})
	}
	src.AudioFormat = &media.AudioFormat{Codec: media.AudioOpus, SampleRate: 48000, Channels: 2}
	return src
}

// cpuTimes is the process's user and system CPU time so far.
func cpuTimes() (user, sys time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// The viewers of BenchmarkViewersPerCore run in a helper process (this
// test binary, re-executed), so that the benchmark's CPU time is the
// device's alone. Offers go to the helper's stdin and answers come back on
// its stdout, one JSON line each.
const helperEnv = "ERSMESH_BENCH_VIEWERS"

type benchSDP struct {
	ID  int                        `json:"id"`
	SDP *webrtc.SessionDescription `json:"sdp,omitempty"`
	// Received is, in the answer to a line with ID -1, the RTP bytes
	// (headers and payloads) and data channel messages all viewers have
	// read so far.
	Received int64 `json:"received,omitempty"`
	// Packets and Lost are, in the same answer, the video RTP packets
	// the viewers read and the gaps in their sequence numbers when a
	// later packet came (a NACK's resend does not undo a gap): loss
	// between the device's sockets and the viewers'.
	Packets int64 `json:"packets,omitempty"`
	Lost    int64 `json:"lost,omitempty"`
}

// countReceived is the ID of the line that asks the viewers' process for
// what it received.
const countReceived = -1

// TestBenchViewerHelper is BenchmarkViewersPerCore's viewer process, run
// with helperEnv set; TestMain leaves it out of a normal run.
func TestBenchViewerHelper(t *testing.T) {
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	if v := os.Getenv(viewerRcvbufEnv); v != "" {
		size, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s=%q: want bytes", viewerRcvbufEnv, v)
		}
		base, err := stdnet.NewNet()
		if err != nil {
			t.Fatal(err)
		}
		se.SetNet(rcvbufNet{base, size})
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<20)
	enc := json.NewEncoder(os.Stdout)
	var received, packets, lost atomic.Int64
	for in.Scan() {
		var o benchSDP
		if err := json.Unmarshal(in.Bytes(), &o); err != nil {
			t.Fatal(err)
		}
		if o.ID == countReceived {
			enc.Encode(benchSDP{ID: countReceived, Received: received.Load(), Packets: packets.Load(), Lost: lost.Load()})
			continue
		}
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			buf := make([]byte, 1500)
			video := tr.Kind() == webrtc.RTPCodecTypeVideo
			var next uint16 // the sequence number expected next
			started := false
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				received.Add(int64(n))
				if !video || n < 4 {
					continue
				}
				packets.Add(1)
				seq := uint16(buf[2])<<8 | uint16(buf[3])
				if gap := seq - next; !started || gap < 1<<15 { // else late or resent
					if started {
						lost.Add(int64(gap))
					}
					started, next = true, seq+1
				}
			}
		})
		pc.OnDataChannel(func(dc *webrtc.DataChannel) {
			if dc.Label() == commandChannelLabel {
				dc.OnOpen(func() { dc.SendText(`{"type":"fmp4Request","payload":{"name":"bench"}}`) })
			}
			dc.OnMessage(func(m webrtc.DataChannelMessage) { received.Add(int64(len(m.Data))) })
		})
		if err := pc.SetRemoteDescription(*o.SDP); err != nil {
			t.Fatal(err)
		}
		answer, _ := pc.CreateAnswer(nil)
		gather := webrtc.GatheringCompletePromise(pc)
		pc.SetLocalDescription(answer)
		<-gather
		enc.Encode(benchSDP{ID: o.ID, SDP: pc.LocalDescription()})
	}
	os.Exit(0) // the viewers' goroutines end with the process
}

// viewerRcvbufEnv, if set, is the receive buffer in bytes of the viewers'
// sockets (up to net.core.rmem_max): the operating system's default
// (net.core.rmem_default, 208 KiB) against a larger one, as browsers set.
const viewerRcvbufEnv = "ERSMESH_BENCH_VIEWER_RCVBUF"

// rcvbufNet opens UDP sockets with a receive buffer of size bytes.
type rcvbufNet struct {
	transport.Net
	size int
}

func (n rcvbufNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		err = c.SetReadBuffer(n.size)
	}
	return c, err
}

// BenchmarkViewersPerCore streams synthetic 720p30 at 2 Mbit/s to n pion
// viewers over loopback for 5 s and reports the device's CPU time per
// viewer. The device's PeerConnections are set up exactly as a session sets
// them up (attachSRTP / attachFMP4: real ICE, DTLS, SRTP or SCTP), with the
// SDP passed to the viewers' process instead of through a bridge.
func BenchmarkViewersPerCore(b *testing.B) {
	// srtp-unbatched and fmp4-unbatched send with one system call per
	// packet, as before udpbatch: side by side with srtp and fmp4 in one
	// run they give the batches' worth. srtp-opus is srtp with a camera's
	// Opus audio beside the video (50 packets a second more per viewer,
	// as in ersmesh-bench go2rtc).
	for _, transport := range []string{"srtp", "srtp-unbatched", "srtp-opus", "fmp4", "fmp4-unbatched"} {
		for _, n := range benchViewerCounts(b) {
			b.Run(fmt.Sprintf("%s/viewers=%d", transport, n), func(b *testing.B) {
				benchViewersPerCore(b, transport, n)
			})
		}
	}
}

// viewerCountsEnv overrides BenchmarkViewersPerCore's viewer counts, e.g.
// "400" or "100,400".
const viewerCountsEnv = "ERSMESH_BENCH_VIEWER_COUNTS"

func benchViewerCounts(b *testing.B) []int {
	env := os.Getenv(viewerCountsEnv)
	if env == "" {
		return []int{20, 100, 200}
	}
	var counts []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want viewer counts separated by commas", viewerCountsEnv, env)
		}
		counts = append(counts, n)
	}
	return counts
}

func benchViewersPerCore(b *testing.B, transport string, n int) {
	api, err := newWebRTCAPI(true, iceFailedTimeout)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src := synthetic720p(b)
	if transport == "srtp-opus" {
		src = withOpus(src)
	}
	var srcBytes int
	for _, au := range src.Video {
		for _, n := range au.NALUs {
			srcBytes += len(n)
		}
	}
	srcRate := float64(srcBytes) / (time.Duration(len(src.Video)) * src.FrameDuration).Seconds() // bytes per second
	if len(src.Audio) > 0 {
		var bytes, samples int
		for _, a := range src.Audio {
			bytes, samples = bytes+len(a.Data), samples+a.Samples
		}
		srcRate += float64(bytes) * float64(src.AudioFormat.SampleRate) / float64(samples)
	}
	stream := media.NewStream("bench", src, log)
	defer stream.Close()

	helper := exec.Command(os.Args[0], "-test.run=^TestBenchViewerHelper$")
	helper.Env = append(os.Environ(), helperEnv+"=1")
	helper.Stderr = os.Stderr
	toHelper, err := helper.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	fromHelper, err := helper.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		toHelper.Close()
		helper.Wait()
	}()
	answers := bufio.NewScanner(fromHelper)
	answers.Buffer(nil, 1<<20)
	enc := json.NewEncoder(toHelper)
	// ask sends the viewers' process a line and returns its answer.
	ask := func(q benchSDP) benchSDP {
		if err := enc.Encode(q); err != nil {
			b.Fatal(err)
		}
		if !answers.Scan() {
			b.Fatalf("viewer process ended: %v", answers.Err())
		}
		var a benchSDP
		if err := json.Unmarshal(answers.Bytes(), &a); err != nil {
			b.Fatal(err)
		}
		return a
	}

	var pcs []*webrtc.PeerConnection
	var detaches []func()
	var nets []*udpbatch.Net // the batching ones' sockets
	defer func() {
		for i, pc := range pcs {
			pc.Close()
			detaches[i]()
		}
	}()
	var wg sync.WaitGroup
	for i := range n {
		pc, batch, err := api.NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			b.Fatal(err)
		}
		var detach func()
		if strings.HasPrefix(transport, "fmp4") {
			if transport == "fmp4-unbatched" {
				batch = nil
			}
			detach, err = attachFMP4(pc, batch, map[string]*media.Stream{"bench": stream}, log, nil, nil)
		} else {
			if transport == "srtp-unbatched" {
				batch = nil
			}
			_, detach, err = attachSRTP(pc, batch, stream, log, nil, false)
		}
		if err != nil {
			b.Fatal(err)
		}
		pcs, detaches = append(pcs, pc), append(detaches, detach)
		if batch != nil {
			nets = append(nets, batch)
		}
		connected := make(chan struct{})
		var once sync.Once
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				once.Do(func() { close(connected) })
			}
		})
		offer, _ := pc.CreateOffer(nil)
		gather := webrtc.GatheringCompletePromise(pc)
		pc.SetLocalDescription(offer)
		<-gather
		a := ask(benchSDP{ID: i, SDP: pc.LocalDescription()})
		if a.SDP == nil {
			b.Fatalf("viewer process answered line %d without an SDP", i)
		}
		if err := pc.SetRemoteDescription(*a.SDP); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			select {
			case <-connected:
			case <-time.After(30 * time.Second):
				b.Error("a viewer did not connect")
			}
		})
	}
	wg.Wait()
	time.Sleep(2 * time.Second) // GOP bursts and handshakes settle
	const window = 5 * time.Second
	// What the viewers received, so that a device that sends less (a
	// viewer starved into skipping frames, a broken batch) shows.
	received := func() benchSDP { return ask(benchSDP{ID: countReceived}) }
	b.ResetTimer()
	for range b.N {
		// The kernel's drops at full receive buffers, for the whole
		// network namespace: run the benchmark in a namespace of its
		// own (ip netns exec) for the viewers' alone.
		drops0 := benchproc.UDPRcvbufErrors()
		d0, calls0 := batchStats(nets)
		c0, t0 := received(), stream.Sent()
		r0 := c0.Received
		stopProfile := startCPUProfile(b, os.Getenv(cpuProfileEnv))
		u0, s0 := cpuTimes()
		wall0 := time.Now()
		time.Sleep(window)
		u1, s1 := cpuTimes()
		stopProfile()
		c1, t1 := received(), stream.Sent()
		r1 := c1.Received
		if got := c1.Packets - c0.Packets + c1.Lost - c0.Lost; got > 0 {
			b.ReportMetric(100*float64(c1.Lost-c0.Lost)/float64(got), "video-lost-%")
		}
		if drops0 >= 0 {
			b.ReportMetric(float64(benchproc.UDPRcvbufErrors()-drops0), "rcvbuf-drops")
		}
		b.ReportMetric(float64(r1-r0)*8/time.Since(wall0).Seconds()/float64(n)/1e6, "rx-Mbit/s/viewer")
		wall := time.Since(wall0).Seconds() * float64(n)
		user, sys := (u1-u0).Seconds()/wall, (s1-s0).Seconds()/wall // cores per viewer
		b.ReportMetric((user+sys)*1000, "mcore/viewer")
		b.ReportMetric(user*1000, "user-mcore/viewer")
		b.ReportMetric(sys*1000, "sys-mcore/viewer")
		b.ReportMetric(1/(user+sys), "viewers/core")
		// A viewer that cannot keep up skips frames, and frames not sent
		// cost the device nothing: the share of the source's bytes the
		// device handed to its viewers' transports (tx) says whether
		// viewers/core counts full-rate viewers; full-viewers/core counts
		// a viewer sent half the bytes as half a viewer.
		tx := float64(t1-t0) / (srcRate * wall)
		b.ReportMetric(100*tx, "tx-%")
		b.ReportMetric(100*float64(r1-r0)/(srcRate*wall), "rx-%")
		b.ReportMetric(min(tx, 1)/(user+sys), "full-viewers/core")
		b.ReportMetric(float64(residentBytes(b))/(1<<20), "MiB-rss")
		if d1, calls1 := batchStats(nets); calls1 > calls0 {
			// What one system call carried: 1 is a plain socket's.
			b.ReportMetric(float64(d1-d0)/float64(calls1-calls0), "datagrams/syscall")
			// The batches' system calls per viewer and second: an srtp
			// viewer's frame, with the audio that waited for it, is one.
			b.ReportMetric(float64(calls1-calls0)/time.Since(wall0).Seconds()/float64(n), "batch-syscalls/s/viewer")
		}
		if path := os.Getenv(heapProfileEnv); path != "" {
			writeHeapProfile(b, path)
		}
	}
}

// batchStats sums the datagrams nets sent in batches and the system calls
// that took them.
func batchStats(nets []*udpbatch.Net) (datagrams, calls uint64) {
	for _, n := range nets {
		d, c := n.Stats()
		datagrams, calls = datagrams+d, calls+c
	}
	return datagrams, calls
}

// cpuProfileEnv names a file for the device's CPU profile of the
// measured window alone (the test binary's -cpuprofile counts the
// viewers' set-up too).
const cpuProfileEnv = "ERSMESH_BENCH_CPUPROFILE"

// startCPUProfile profiles to path until the returned stop; an empty path
// profiles nothing.
func startCPUProfile(tb testing.TB, path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// heapProfileEnv names a file for the device's heap profile, taken while
// every viewer is still connected (the test binary's -memprofile is taken
// after they have all gone).
const heapProfileEnv = "ERSMESH_BENCH_HEAPPROFILE"

func writeHeapProfile(tb testing.TB, path string) {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	tb.Logf("heap in use %.1f MiB, stacks %.1f MiB, runtime total %.1f MiB, goroutines %d",
		float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20), float64(ms.Sys)/(1<<20), runtime.NumGoroutine())
}

// residentBytes is the process's resident memory (VmRSS): the device's,
// since the viewers live in the helper process.
func residentBytes(tb testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Logf("no /proc/self/status: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
