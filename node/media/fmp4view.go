package media

import "sync/atomic"

// Chunk is one piece of an fmp4 viewer's byte stream: the MOOV record, or
// one frame's segment records.
type Chunk struct {
	Data []byte
	Key  bool   // a MOOV or a keyframe's segment: a skipping viewer resumes here
	Sig  []byte // the SIG record a signed viewer gets before Data (docs/relay.md); nil unsigned
}

// FMP4Viewer receives a stream's EMS records. C holds at most viewerQueue
// chunks; when it is full the viewer skips to the next keyframe rather than
// holding the stream up. Its reader (the device's data channel sender) is
// its writer goroutine.
type FMP4Viewer struct {
	C        <-chan Chunk
	c        chan Chunk
	sentMoov int // the stream's moovGen last sent
	waitKey  bool
	dropped  atomic.Uint64
	closed   bool
}

// Dropped counts frames skipped because the viewer's queue was full.
func (v *FMP4Viewer) Dropped() uint64 { return v.dropped.Load() }

func (v *FMP4Viewer) close() {
	if !v.closed {
		v.closed = true
		close(v.c)
	}
}

// push queues f (under the stream's lock), first the MOOV if not sent yet.
func (v *FMP4Viewer) push(s *Stream, f *Frame) {
	if f.EMS == nil {
		return
	}
	if v.sentMoov != s.moovGen {
		if !f.Key || !v.offer(Chunk{Data: s.moov, Key: true, Sig: s.moovSig}) {
			v.waitKey = true
			return
		}
		v.sentMoov = s.moovGen
	}
	if v.waitKey && !f.Key {
		v.dropped.Add(1)
		return
	}
	if !v.offer(Chunk{Data: f.EMS, Key: f.Key, Sig: f.Sig}) {
		v.waitKey = true
		v.dropped.Add(1)
		return
	}
	v.waitKey = false
}

func (v *FMP4Viewer) offer(c Chunk) bool {
	select {
	case v.c <- c:
		return true
	default:
		return false
	}
}

// SubscribeFMP4 adds an fmp4 viewer. Its queue starts with the MOOV record
// and the current GOP, so the viewer's first frame is a keyframe at once.
func (s *Stream) SubscribeFMP4() (*FMP4Viewer, error) {
	c := make(chan Chunk, viewerQueue)
	v := &FMP4Viewer{C: c, c: c}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed() {
		return nil, ErrClosed
	}
	if s.moov != nil {
		for _, f := range s.gop.usable() {
			v.push(s, f)
		}
	}
	s.fsubs[v] = struct{}{}
	return v, nil
}

// UnsubscribeFMP4 removes v and closes its queue.
func (s *Stream) UnsubscribeFMP4(v *FMP4Viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.fsubs, v)
	v.close()
}
