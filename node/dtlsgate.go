package node

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// dtlsGate holds back every byte of media of a room-secret session (RTP on
// its tracks, fMP4 on its data channels) until the certificate the DTLS
// handshake actually negotiated has been compared with the fingerprint the
// viewer proved the secret for. checkAnswer already makes every fingerprint
// line of the answer the proven one, and pion checks the certificate
// against the answer; the gate is the last word, on what was negotiated
// rather than on what was written, so that no parsing difference between
// us and pion can let a bridge's certificate receive a protected stream.
type dtlsGate struct {
	want  string        // the proven fingerprint, "sha-256 AB:CD:..."
	open  chan struct{} // closed once the certificate matched
	fail  chan struct{} // closed once it did not
	once  sync.Once
	wg    sync.WaitGroup // the check's goroutine
	onBad func(got string)
}

func newDTLSGate(want string, onBad func(got string)) *dtlsGate {
	return &dtlsGate{want: want, open: make(chan struct{}), fail: make(chan struct{}), onBad: onBad}
}

// watch checks pc's DTLS certificate once the handshake is done.
func (g *dtlsGate) watch(pc *webrtc.PeerConnection) {
	dt := pc.SCTP().Transport()
	dt.OnStateChange(func(st webrtc.DTLSTransportState) {
		if st != webrtc.DTLSTransportStateConnected {
			return
		}
		// pion calls this holding the transport's lock, before it starts
		// SRTP or SCTP; GetRemoteCertificate takes the same lock, so the
		// check runs on its own goroutine while the gate keeps media back.
		g.wg.Go(func() { g.check(dt.GetRemoteCertificate()) })
	})
}

func (g *dtlsGate) check(der []byte) {
	got, err := certFingerprint(g.want, der)
	if err == nil && got == g.want {
		g.once.Do(func() { close(g.open) })
		return
	}
	if err != nil {
		got = err.Error()
	}
	g.once.Do(func() {
		close(g.fail)
		g.onBad(got)
	})
}

// wait blocks until the gate opens (true) or fails or quit closes (false).
func (g *dtlsGate) wait(quit <-chan struct{}) bool {
	select {
	case <-g.open:
		return true
	case <-g.fail:
	case <-quit:
	}
	return false
}

func (g *dtlsGate) isOpen() bool {
	select {
	case <-g.open:
		return true
	default:
		return false
	}
}

// certFingerprint is the fingerprint of a DER certificate in the hash
// algorithm of like ("sha-256 ..."), written as NormalizeFingerprint does.
func certFingerprint(like string, der []byte) (string, error) {
	if len(der) == 0 {
		return "", fmt.Errorf("no remote certificate")
	}
	alg, _, _ := strings.Cut(like, " ")
	var h hash.Hash
	switch alg {
	case "sha-256":
		h = sha256.New()
	case "sha-384":
		h = sha512.New384()
	case "sha-512":
		h = sha512.New()
	default:
		return "", fmt.Errorf("fingerprint algorithm %q is not supported", alg)
	}
	h.Write(der)
	sum := h.Sum(nil)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return alg + " " + strings.Join(parts, ":"), nil
}

// gatedTrack is a track whose packets are dropped, as pion drops them
// before SRTP is up (0 bytes, no error), until its gate opens.
type gatedTrack struct {
	webrtc.TrackLocal
	g *dtlsGate
}

func (t gatedTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	return t.TrackLocal.Bind(gatedContext{c, t.g})
}

type gatedContext struct {
	webrtc.TrackLocalContext
	g *dtlsGate
}

func (c gatedContext) WriteStream() webrtc.TrackLocalWriter {
	return gatedWriter{c.TrackLocalContext.WriteStream(), c.g}
}

type gatedWriter struct {
	w webrtc.TrackLocalWriter
	g *dtlsGate
}

func (w gatedWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if !w.g.isOpen() {
		return 0, nil
	}
	return w.w.WriteRTP(h, payload)
}

func (w gatedWriter) Write(b []byte) (int, error) {
	if !w.g.isOpen() {
		return 0, nil
	}
	return w.w.Write(b)
}
