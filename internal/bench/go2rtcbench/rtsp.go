package go2rtcbench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// relay is the RTSP server both servers under test read: one publisher
// (ffmpeg, ANNOUNCE and RECORD) and any number of readers (DESCRIBE,
// SETUP, PLAY), TCP only, in the benchmark's process. Neither go2rtc nor
// the device serves the stream to the other: each is an RTSP client of
// the same server, as each would be of a camera.
//
// Each reader has a queue of relayQueue packets; a reader that falls that
// far behind loses packets, which the relay counts per reader: go2rtc
// (its User-Agent) or the device (any other).
type relay struct {
	srv       *gortsplib.Server
	mu        sync.Mutex // guards the rest: gortsplib calls the handler from its connections' goroutines
	stream    *gortsplib.ServerStream
	publisher *gortsplib.ServerSession
	readers   map[*gortsplib.ServerSession]string // session → "go2rtc" or "ersmesh"
	drops     map[string]int64                    // packets a reader's full queue lost
}

// relayQueue is a reader's queue in packets: about 20 s of the clip, so
// that a benchmark process waiting for a core on a loaded machine delays
// the stream rather than cutting it.
const relayQueue = 1 << 12

// startRelay listens on a free loopback port; url is where to publish
// and read the stream.
func startRelay() (r *relay, url string, err error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, "", err
	}
	r = &relay{readers: make(map[*gortsplib.ServerSession]string), drops: make(map[string]int64)}
	r.srv = &gortsplib.Server{Handler: r, RTSPAddress: fmt.Sprintf("127.0.0.1:%d", ports[0]), WriteQueueSize: relayQueue}
	if err := r.srv.Start(); err != nil {
		return nil, "", fmt.Errorf("RTSP server: %w", err)
	}
	return r, fmt.Sprintf("rtsp://127.0.0.1:%d/%s", ports[0], streamName), nil
}

func (r *relay) close() {
	r.srv.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		r.stream.Close()
		r.stream = nil
	}
}

// waitPublisher returns once a publisher has announced the stream.
func (r *relay) waitPublisher(ctx context.Context) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, st, _ := r.current(); st != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("ffmpeg did not publish the clip to the RTSP server within 20 s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *relay) current() (*base.Response, *gortsplib.ServerStream, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r.stream, nil
}

// OnAnnounce takes a new publisher's description; an earlier publisher
// (ffmpeg restarted) is dropped with its readers.
func (r *relay) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stream != nil {
		r.stream.Close()
		r.publisher.Close()
	}
	r.stream = gortsplib.NewServerStream(r.srv, ctx.Description)
	r.publisher = ctx.Session
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (r *relay) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return r.current()
}

func (r *relay) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session != nil && ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		// The publisher's own SETUPs, after its ANNOUNCE.
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	return r.current()
}

func (r *relay) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	name := "ersmesh"
	if ua := ctx.Request.Header["User-Agent"]; len(ua) > 0 && strings.HasPrefix(ua[0], "go2rtc") {
		name = "go2rtc"
	}
	r.mu.Lock()
	r.readers[ctx.Session] = name
	r.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnStreamWriteError is a packet lost to a reader's full queue.
func (r *relay) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drops[r.readers[ctx.Session]]++
}

// dropped is the packets the reader name ("go2rtc" or "ersmesh") has lost
// so far.
func (r *relay) dropped(name string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drops[name]
}

// OnRecord forwards every packet the publisher sends to the readers.
func (r *relay) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	r.mu.Lock()
	stream := r.stream
	r.mu.Unlock()
	ctx.Session.OnPacketRTPAny(func(m *description.Media, _ format.Format, p *rtp.Packet) {
		stream.WritePacketRTP(m, p)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSessionClose ends the stream when its publisher leaves, which
// disconnects the readers (they reconnect to the next publisher).
func (r *relay) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.readers, ctx.Session)
	if r.stream != nil && ctx.Session == r.publisher {
		r.stream.Close()
		r.stream, r.publisher = nil, nil
	}
}
