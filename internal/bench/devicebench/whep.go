package devicebench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/ersmesh/ersmesh/internal/bench/benchproc"
)

// Target is a server that other packages compare with the device: a
// process whose CPU time and memory are read from /proc, and a WHEP
// endpoint its viewers POST their offers to.
type Target struct {
	Name string
	PID  int
	WHEP string // the endpoint URL
	// Sent, if set, reads the media bytes the server says it has sent
	// to all its viewers so far (its own counters); negative if it
	// cannot tell.
	Sent func() int64
}

func (t Target) cpu() time.Duration { return benchproc.CPU(t.PID) }
func (t Target) rss() float64       { return benchproc.RSS(t.PID) }

// Idle is the percentage of one core t spends over d with no viewer.
func Idle(t Target, d time.Duration) float64 { return idle(t.cpu, d) }

// MeasureStep joins n pion WHEP viewers to t (eight at a time; a step
// with at least 90 % of them connected is measured with those), waits
// settle, measures t's CPU time and what the viewers receive over d, and
// closes the viewers again. idlePercent is t's own use with no viewer
// (Idle), which the step's per-viewer figures are taken above.
func MeasureStep(ctx context.Context, api *webrtc.API, t Target, n int, settle, d time.Duration, idlePercent float64) (Step, error) {
	// On a loaded machine a join now and then does not connect within
	// its 30 s: a viewer gets three tries, and the step says how many
	// failed.
	var failed atomic.Int64
	f := &fleet{join: func(ctx context.Context) (receiver, error) {
		var err error
		for range joinTries {
			var v receiver
			if v, err = watchWHEP(ctx, api, t.WHEP); err == nil {
				return v, nil
			}
			failed.Add(1)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, err
	}}
	defer f.close()
	// A server that cannot take every viewer is measured with those it
	// took, if they are most of them; the step says how many it did not.
	if err := f.grow(ctx, n); err != nil && (ctx.Err() != nil || len(f.viewers) < n*minConnected/100) {
		return Step{}, fmt.Errorf("%s with %d viewers: %d connected: %w", t.Name, n, len(f.viewers), err)
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return Step{}, ctx.Err()
	}
	st := f.sample(t.cpu, t.rss, t.Sent, d, idlePercent)
	st.FailedJoins, st.Unconnected = failed.Load(), n-len(f.viewers)
	return st, nil
}

// joinTries is how many times MeasureStep tries to connect one viewer;
// minConnected the percentage of the viewers asked for that must connect
// for a step to be measured.
const (
	joinTries    = 3
	minConnected = 90
)

// whepViewer is one WHEP client: a pion PeerConnection receiving video and
// audio, and the session's URL to DELETE when it leaves.
type whepViewer struct {
	sink
	pc      *webrtc.PeerConnection
	session string // "" when the server gave no Location
}

// watchWHEP POSTs a recvonly offer (video and audio, its candidates
// gathered first, as simple WHEP clients do) to endpoint and returns once
// video flows. It is a receiver for MeasureStep and for tests.
func watchWHEP(ctx context.Context, api *webrtc.API, endpoint string) (receiver, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	v := &whepViewer{sink: newSink(), pc: pc}
	ok := false
	defer func() {
		if !ok {
			v.close()
		}
	}()
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return nil, err
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { v.read(tr) })
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	answer, location, err := postOffer(ctx, endpoint, pc.LocalDescription().SDP)
	if err != nil {
		return nil, err
	}
	v.session = location
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return nil, fmt.Errorf("the answer of %s: %w", endpoint, err)
	}
	select {
	case <-v.flowing:
	case <-ctx.Done():
		return nil, fmt.Errorf("no media from %s within 30 s; connection %s", endpoint, pc.ConnectionState())
	}
	ok = true
	return v, nil
}

// postOffer is WHEP's POST: the offer in, the answer and the session's
// absolute URL (its Location, "" without one) out.
func postOffer(ctx context.Context, endpoint, offer string) (answer, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader([]byte(offer)))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	// The ersmesh bridge asks for a bearer token (any, for an open room);
	// go2rtc ignores it.
	req.Header.Set("Authorization", "Bearer bench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("WHEP POST to %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("WHEP POST to %s: %s: %s", endpoint, resp.Status, bytes.TrimSpace(body))
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		base, err := url.Parse(endpoint)
		if err != nil {
			return "", "", err
		}
		ref, err := url.Parse(loc)
		if err != nil {
			return "", "", fmt.Errorf("WHEP POST to %s: Location %q: %w", endpoint, loc, err)
		}
		location = base.ResolveReference(ref).String()
	}
	return string(body), location, nil
}

// close DELETEs the session (WHEP's way to leave) and closes the
// PeerConnection.
func (v *whepViewer) close() {
	if v.session != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if req, err := http.NewRequestWithContext(ctx, http.MethodDelete, v.session, nil); err == nil {
			req.Header.Set("Authorization", "Bearer bench")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}
	}
	v.pc.Close()
}
