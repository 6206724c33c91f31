package node

import (
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/node/media"
	"github.com/ersmesh/ersmesh/node/udpbatch"
)

// TestSRTPFramesGoInBatches: an srtp viewer's frames leave the device in
// batches, several packets per system call (udpbatch, through pion's ICE
// transport as a session sets it up), and the viewer gets every packet
// of them intact: its SRTP authenticates each one.
func TestSRTPFramesGoInBatches(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stream := media.NewStream("hd", synthetic720p(t), log)
	defer stream.Close()
	dev, batch := newDevicePC(t)
	_, detach, err := attachSRTP(dev, batch, stream, log, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	viewer := newLoopbackViewer(t)
	var packets, frames atomic.Int64
	readerDone := make(chan struct{})
	viewer.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		defer close(readerDone)
		var p rtp.Packet
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if p.Unmarshal(buf[:n]) != nil {
				continue
			}
			packets.Add(1)
			if p.Marker {
				frames.Add(1)
			}
		}
	})
	defer func() {
		viewer.Close()
		dev.Close()
		detach()
		select {
		case <-readerDone:
		case <-time.After(10 * time.Second):
			t.Error("the viewer's reader did not end")
		}
	}()
	pairUp(t, dev, viewer)
	for deadline := time.Now().Add(30 * time.Second); frames.Load() < 60; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the viewer got %d frames in 30 s, want 60", frames.Load())
		}
	}
	datagrams, calls := batch.Stats()
	got := packets.Load()
	t.Logf("viewer: %d frames, %d packets; device: %d datagrams in %d system calls", frames.Load(), got, datagrams, calls)
	// 720p at 2 Mbit/s: 6 packets a frame, 50 a keyframe. One packet
	// per call is what an unbatched socket does.
	if calls == 0 || datagrams < 3*calls {
		t.Fatalf("%d datagrams in %d batched system calls: frames are not sent in batches", datagrams, calls)
	}
	if uint64(got) > datagrams {
		t.Fatalf("the viewer got %d video packets, more than the %d datagrams sent in batches: frames bypass the batches", got, datagrams)
	}
}

// The device's SRTP is AES-128-GCM with a viewer that offers the profiles
// pion offers by default (AES-256-GCM first): the cheaper cipher for every
// packet to every viewer.
func TestSRTPProfileIsAES128GCM(t *testing.T) {
	dev, _ := newDevicePC(t)
	defer dev.Close()
	if _, err := dev.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	viewer := newLoopbackViewer(t)
	defer viewer.Close()
	pairUp(t, dev, viewer)
	cipher := ""
	for deadline := time.Now().Add(10 * time.Second); cipher == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, s := range dev.GetStats() {
			if ts, ok := s.(webrtc.TransportStats); ok {
				cipher = ts.SRTPCipher
			}
		}
	}
	if cipher != "SRTP_AEAD_AES_128_GCM" {
		t.Fatalf("SRTP profile %q, want SRTP_AEAD_AES_128_GCM", cipher)
	}
}

// newDevicePC is a PeerConnection made as the device makes a viewer's.
func newDevicePC(t testing.TB) (*webrtc.PeerConnection, *udpbatch.Net) {
	t.Helper()
	api, err := newWebRTCAPI(true, iceFailedTimeout)
	if err != nil {
		t.Fatal(err)
	}
	pc, batch, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	return pc, batch
}

// newLoopbackViewer is a pion viewer with pion's defaults that gathers
// loopback candidates.
func newLoopbackViewer(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestSRTPAudioAndVideoArriveWhole: a real pion viewer of a stream with
// video and Opus audio gets every audio packet, in order, its audio
// riding in the video frames' batches (media.Stream's audioHold), every
// video frame, and sender reports for both tracks whose RTP time matches
// the packets' (the browser's lip sync rests on them, RFC 3550 §6.4.1).
func TestSRTPAudioAndVideoArriveWhole(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	stream := media.NewStream("hd", withOpus(synthetic720p(t)), log)
	defer stream.Close()
	dev, batch := newDevicePC(t)
	_, detach, err := attachSRTP(dev, batch, stream, log, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	// Receive buffers as browsers set them (the operating system's
	// default, 208 KiB, overflows when this process waits for a CPU on a
	// loaded machine, and audio has no NACK to repair a drop).
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	base, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	se.SetNet(rcvbufNet{base, 4 << 20})
	viewer, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}

	type track struct {
		mu              sync.Mutex
		packets         int
		frames          int
		firstSeq        uint16
		got             [1 << 16]bool // by sequence number less the first
		last            int           // the highest index got
		outOfOrder      int
		lastTS          uint32
		srs, srMismatch int
		clockRate       uint32
		firstTS         uint32
		lateness        []time.Duration
	}
	var video, audio track
	var readers sync.WaitGroup
	viewer.OnTrack(func(tr *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		tk := &video
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			tk = &audio
		}
		tk.mu.Lock()
		tk.clockRate = tr.Codec().ClockRate
		tk.mu.Unlock()
		start := time.Now()
		readers.Go(func() {
			for {
				pkts, _, err := recv.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					sr, ok := p.(*rtcp.SenderReport)
					if !ok || sr.SSRC != uint32(tr.SSRC()) {
						continue
					}
					tk.mu.Lock()
					tk.srs++
					// Within 3 s of the last packet's time: a report
					// of another clock or track is far off.
					if d := int32(sr.RTPTime - tk.lastTS); tk.packets > 0 && (d > 3*int32(tk.clockRate) || d < -3*int32(tk.clockRate)) {
						tk.srMismatch++
					}
					tk.mu.Unlock()
				}
			}
		})
		readers.Go(func() {
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				tk.mu.Lock()
				if tk.packets == 0 {
					tk.firstTS, tk.firstSeq = p.Timestamp, p.SequenceNumber
				}
				i := int(p.SequenceNumber - tk.firstSeq)
				if i < tk.last {
					tk.outOfOrder++ // a NACK's resend, for video
				}
				tk.got[i], tk.last = true, max(tk.last, i)
				// When it came, less when its timestamp says it was due.
				tk.lateness = append(tk.lateness, time.Since(start)-time.Duration(p.Timestamp-tk.firstTS)*time.Second/time.Duration(tk.clockRate))
				tk.packets++
				tk.lastTS = p.Timestamp
				if p.Marker {
					tk.frames++
				}
				tk.mu.Unlock()
			}
		})
	})
	defer func() {
		viewer.Close()
		dev.Close()
		detach()
		readers.Wait()
	}()
	pairUp(t, dev, viewer)
	done := func() bool {
		video.mu.Lock()
		defer video.mu.Unlock()
		audio.mu.Lock()
		defer audio.mu.Unlock()
		return video.frames >= 90 && audio.packets >= 150 && video.srs >= 2 && audio.srs >= 2
	}
	for deadline := time.Now().Add(30 * time.Second); !done(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d video frames, %d audio packets, %d and %d sender reports; want 90, 150, 2 and 2",
				video.frames, audio.packets, video.srs, audio.srs)
		}
	}
	datagrams, calls := batch.Stats()
	video.mu.Lock()
	audio.mu.Lock()
	defer video.mu.Unlock()
	defer audio.mu.Unlock()
	t.Logf("viewer: %d video frames (%d packets), %d audio packets, %d + %d sender reports; device: %d datagrams in %d system calls",
		video.frames, video.packets, audio.packets, video.srs, audio.srs, datagrams, calls)
	// How late the audio packets came, after the earliest: the wait for
	// the next video frame (at most one frame interval), and scheduling.
	late := slices.Clone(audio.lateness[50:]) // after the start's bursts
	slices.Sort(late)
	t.Logf("audio packets' arrival after the earliest, relative to their timestamps: median %v, 95th percentile %v, max %v",
		(late[len(late)/2] - late[0]).Round(time.Millisecond), (late[len(late)*95/100] - late[0]).Round(time.Millisecond), (late[len(late)-1] - late[0]).Round(time.Millisecond))
	missing := func(tk *track, upTo int) (n int) {
		for i := range upTo + 1 {
			if !tk.got[i] {
				n++
			}
		}
		return n
	}
	// Every audio packet, in order; every video packet but the last
	// frames', whose NACK repair may be under way.
	if n := missing(&audio, audio.last); n > 0 || audio.outOfOrder > 0 {
		t.Errorf("audio: %d packets of %d missing, %d out of order", n, audio.last+1, audio.outOfOrder)
	}
	if n := missing(&video, video.last-60); n > 0 {
		t.Errorf("video: %d packets of %d missing", n, video.last-59)
	}
	if audio.srMismatch > 0 || video.srMismatch > 0 {
		t.Errorf("sender reports whose RTP time is not the stream's: %d audio, %d video", audio.srMismatch, video.srMismatch)
	}
}
