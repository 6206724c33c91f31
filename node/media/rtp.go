package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/pion/rtp"
)

// Limits of RTP ingest.
const (
	maxSDPSize     = 64 << 10
	maxRTPPacket   = 1 << 16 // a UDP datagram
	rtpIdleTimeout = 10 * time.Second
)

// RTPSource receives RTP that a sender (ffmpeg -f rtp, GStreamer's
// udpsink) pushes to UDP ports, as an SDP file describes it (RFC 8866):
// each m= line's port and payload formats. The URL's host is the address
// to listen on.
type RTPSource struct {
	name   string
	host   string
	medias []*description.Media
	ports  []int
}

// NewRTPSource reads and checks the SDP file.
func NewRTPSource(raw, sdpPath string) (*RTPSource, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSource, raw, err)
	}
	if sdpPath == "" {
		return nil, fmt.Errorf("%w %q: an RTP source needs its SDP file: %s,sdp=FILE.sdp", ErrBadSource, raw, raw)
	}
	b, err := readFile(sdpPath)
	if err != nil {
		return nil, err
	}
	if len(b) > maxSDPSize {
		return nil, fmt.Errorf("%w %q: SDP file over %d KiB", ErrBadSource, sdpPath, maxSDPSize>>10)
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("%w %q: not an SDP file: %w", ErrBadSource, sdpPath, err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSource, sdpPath, err)
	}
	r := &RTPSource{name: raw + ",sdp=" + sdpPath, host: u.Hostname(), medias: desc.Medias}
	for i, md := range sd.MediaDescriptions {
		if i >= len(desc.Medias) {
			break
		}
		r.ports = append(r.ports, md.MediaName.Port.Value)
	}
	in, _, err := newRTPIngest(r.medias)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	if p := u.Port(); p != "" {
		for i, m := range r.medias {
			if m == in.videoMedia && strconv.Itoa(r.ports[i]) != p {
				return nil, fmt.Errorf("%w %q: the SDP puts the video on port %d, not %s", ErrBadSource, r.name, r.ports[i], p)
			}
		}
	}
	return r, nil
}

func (r *RTPSource) String() string { return r.name }

// Run implements Source: it listens on the ports of the tracks it serves.
// It fails when no packet arrived for rtpIdleTimeout, so that the Stream
// logs it and listens again.
func (r *RTPSource) Run(ctx context.Context, w Writer) error {
	in, _, err := newRTPIngest(r.medias)
	if err != nil {
		return err
	}
	type track struct {
		conn  net.PacketConn
		media *description.Media
		clock int
		video bool
	}
	var tracks []track
	defer func() {
		for _, t := range tracks {
			t.conn.Close()
		}
	}()
	for i, m := range r.medias {
		if m != in.videoMedia && m != in.audioMedia {
			continue
		}
		addr := net.JoinHostPort(r.host, strconv.Itoa(r.ports[i]))
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("%s: listen on %s: %w", r.name, addr, err)
		}
		t := track{conn: c, media: m, video: m == in.videoMedia}
		if t.video {
			t.clock = in.vformat.ClockRate()
		} else {
			t.clock = in.audioFormat.ClockRate()
		}
		tracks = append(tracks, t)
	}
	in.start(w)
	start := time.Now()
	var mu sync.Mutex // the Writer takes frames from one goroutine at a time
	errs := make(chan error, len(tracks))
	stop := context.AfterFunc(ctx, func() {
		for _, t := range tracks {
			t.conn.SetReadDeadline(time.Now())
		}
	})
	defer stop()
	var wg sync.WaitGroup
	for _, t := range tracks {
		wg.Go(func() {
			buf := make([]byte, maxRTPPacket)
			var offset time.Duration
			var ext int64 // unwrapped timestamp delta
			var last uint32
			started := false
			for {
				t.conn.SetReadDeadline(time.Now().Add(rtpIdleTimeout))
				n, _, err := t.conn.ReadFrom(buf)
				if err != nil {
					if ctx.Err() != nil {
						errs <- ctx.Err()
					} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
						errs <- fmt.Errorf("%s: %w on %s for %v", r.name, errNoPackets, t.conn.LocalAddr(), rtpIdleTimeout)
					} else {
						errs <- fmt.Errorf("%s: %w", r.name, err)
					}
					return
				}
				var p rtp.Packet
				if err := p.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
					continue // not RTP: ignore, as a camera's stray packet
				}
				if !started {
					// Tracks are aligned by arrival: without RTCP sender
					// reports that is the best there is.
					last, offset, started = p.Timestamp, time.Since(start), true
				}
				ext += int64(int32(p.Timestamp - last))
				last = p.Timestamp
				rate := int64(t.clock)
				pts := offset + time.Duration(ext/rate)*time.Second + time.Duration(ext%rate)*time.Second/time.Duration(rate)
				mu.Lock()
				if t.video {
					in.video(&p, pts)
				} else {
					in.audioPacket(&p, pts)
				}
				mu.Unlock()
			}
		})
	}
	err = <-errs
	for _, t := range tracks {
		t.conn.SetReadDeadline(time.Now())
	}
	wg.Wait()
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
