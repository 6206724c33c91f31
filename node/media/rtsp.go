package media

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// RTSPSource pulls a camera's stream with gortsplib (RFC 2326). Each Run is
// one RTSP session; when the camera drops, Run returns the error and the
// Stream reconnects with a backoff.
type RTSPSource struct {
	u    *base.URL
	name string // the URL without credentials, for logs
	log  *slog.Logger

	mu    sync.Mutex // guards the running session's client, media and SSRC
	cur   *gortsplib.Client
	video *description.Media
	ssrc  uint32
}

// RequestKeyframe asks the camera for a keyframe with an RTCP Picture Loss
// Indication (RFC 4585 §6.3.1) on the video media, which cameras that read
// RTCP answer with an IDR frame. It does nothing between sessions.
func (r *RTSPSource) RequestKeyframe() {
	r.mu.Lock()
	c, m, ssrc := r.cur, r.video, r.ssrc
	r.mu.Unlock()
	if c == nil {
		return
	}
	if err := c.WritePacketRTCP(m, &rtcp.PictureLossIndication{MediaSSRC: ssrc}); err != nil && r.log != nil {
		r.log.Debug("rtsp: cannot ask the camera for a keyframe", "err", err)
	}
}

func (r *RTSPSource) setSession(c *gortsplib.Client, m *description.Media) {
	r.mu.Lock()
	r.cur, r.video = c, m
	r.mu.Unlock()
}

func (r *RTSPSource) setLogger(l *slog.Logger) { r.log = l }

// NewRTSPSource checks the URL; it does not connect yet.
func NewRTSPSource(raw string) (*RTSPSource, error) {
	u, err := base.ParseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadSource, redact(raw), err)
	}
	return &RTSPSource{u: u, name: redact(raw)}, nil
}

// redact hides a password in a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func (r *RTSPSource) String() string { return r.name }

// Run implements Source.
func (r *RTSPSource) Run(ctx context.Context, w Writer) error {
	log := r.log
	if log == nil {
		log = slog.Default()
	}
	// gortsplib's own defaults print to the standard logger.
	c := gortsplib.Client{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		OnTransportSwitch: func(err error) { log.Info("rtsp: switching transport", "why", err) },
		OnPacketLost:      func(err error) { log.Debug("rtsp: packets lost", "err", err) },
		OnDecodeError:     func(err error) { log.Debug("rtsp: decode error", "err", err) },
	}
	if err := c.Start(r.u.Scheme, r.u.Host); err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	desc, _, err := c.Describe(r.u)
	if err != nil {
		return fmt.Errorf("%s: describe: %w", r.name, err)
	}
	in, _, err := newRTPIngest(desc.Medias)
	if err != nil {
		return fmt.Errorf("%s: %w", r.name, err)
	}
	medias := []*description.Media{in.videoMedia}
	if in.audioMedia != nil && in.audioMedia != in.videoMedia {
		medias = append(medias, in.audioMedia)
	}
	if err := c.SetupAll(desc.BaseURL, medias); err != nil {
		return fmt.Errorf("%s: setup: %w", r.name, err)
	}
	in.start(w)
	pts := func(m *description.Media, f format.Format, p *rtp.Packet) (time.Duration, bool) {
		v, ok := c.PacketPTS2(m, p)
		if !ok {
			return 0, false
		}
		rate := int64(f.ClockRate())
		return time.Duration(v/rate)*time.Second + time.Duration(v%rate)*time.Second/time.Duration(rate), true
	}
	// gortsplib calls each media's callback from one goroutine per media;
	// the Stream's Writer is safe for that.
	c.OnPacketRTP(in.videoMedia, in.vformat, func(p *rtp.Packet) {
		r.mu.Lock()
		r.ssrc = p.SSRC
		r.mu.Unlock()
		if t, ok := pts(in.videoMedia, in.vformat, p); ok {
			in.video(p, t)
		}
	})
	if in.audioMedia != nil {
		c.OnPacketRTP(in.audioMedia, in.audioFormat, func(p *rtp.Packet) {
			if t, ok := pts(in.audioMedia, in.audioFormat, p); ok {
				in.audioPacket(p, t)
			}
		})
	}
	if _, err := c.Play(nil); err != nil {
		return fmt.Errorf("%s: play: %w", r.name, err)
	}
	r.setSession(&c, in.videoMedia)
	defer r.setSession(nil, nil)
	err = c.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s: %w", r.name, err)
}
