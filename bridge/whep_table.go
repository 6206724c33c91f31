package bridge

import (
	"errors"
	"time"
)

// WHEPConfig limits the WHEP endpoint. The zero value gives the defaults.
type WHEPConfig struct {
	// MaxSessions bounds the WHEP sessions a bridge relays at once; a POST
	// beyond it gets 503. Default 256.
	MaxSessions int
	// RatePerMinute and Burst bound the POSTs one client address may make
	// (a token bucket): beyond them it gets 429. Defaults 30 and 10.
	RatePerMinute int
	Burst         int
}

func (c *WHEPConfig) setDefaults() {
	if c.MaxSessions <= 0 {
		c.MaxSessions = 256
	}
	if c.RatePerMinute <= 0 {
		c.RatePerMinute = 30
	}
	if c.Burst <= 0 {
		c.Burst = 10
	}
}

// maxBuckets bounds the rate limiter's memory: strangers choose the client
// addresses. Full buckets are forgotten at every sweep.
const (
	maxBuckets    = 16384
	sweepInterval = 30 * time.Second
)

var (
	errTableClosed = errors.New("the bridge is shutting down")
	errTableFull   = errors.New("this bridge relays as many WHEP sessions as it may")
)

// whepTable is the WHEP session table and the POST rate limiter. One
// goroutine (run) owns both maps; everyone else hands it closures through
// call, so no lock guards them.
type whepTable struct {
	cfg  WHEPConfig
	ops  chan func()
	quit chan struct{}
	done chan struct{}

	// Owned by run.
	sessions map[string]*whepSession
	buckets  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newWHEPTable(cfg WHEPConfig) *whepTable {
	cfg.setDefaults()
	t := &whepTable{
		cfg: cfg, ops: make(chan func()), quit: make(chan struct{}), done: make(chan struct{}),
		sessions: make(map[string]*whepSession), buckets: make(map[string]*bucket),
	}
	go t.run()
	return t
}

func (t *whepTable) run() {
	defer close(t.done)
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	for {
		select {
		case f := <-t.ops:
			f()
		case now := <-tick.C:
			t.sweep(now)
		case <-t.quit:
			return
		}
	}
}

// call runs f on the owner goroutine and waits for it.
func (t *whepTable) call(f func()) error {
	ran := make(chan struct{})
	select {
	case t.ops <- func() { f(); close(ran) }:
		<-ran
		return nil
	case <-t.quit:
		return errTableClosed
	}
}

// close stops the owner and returns the sessions still in the table, for
// the bridge to end.
func (t *whepTable) close() []*whepSession {
	var left []*whepSession
	if t.call(func() {
		for _, s := range t.sessions {
			left = append(left, s)
		}
	}) != nil {
		return nil
	}
	close(t.quit)
	<-t.done
	return left
}

// allow takes a token from the bucket of client addr; false means the
// client is over its rate.
func (t *whepTable) allow(addr string, now time.Time) bool {
	ok := false
	err := t.call(func() {
		b := t.buckets[addr]
		if b == nil {
			if len(t.buckets) >= maxBuckets {
				t.sweep(now)
			}
			if len(t.buckets) >= maxBuckets {
				return // refuse rather than grow without bound
			}
			b = &bucket{tokens: float64(t.cfg.Burst), last: now}
			t.buckets[addr] = b
		}
		b.refill(now, t.cfg)
		if b.tokens >= 1 {
			b.tokens--
			ok = true
		}
	})
	return err == nil && ok
}

func (b *bucket) refill(now time.Time, cfg WHEPConfig) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(cfg.Burst), b.tokens+d.Minutes()*float64(cfg.RatePerMinute))
		b.last = now
	}
}

// sweep forgets the buckets that have refilled: they hold nothing a new
// bucket would not.
func (t *whepTable) sweep(now time.Time) {
	for addr, b := range t.buckets {
		b.refill(now, t.cfg)
		if b.tokens >= float64(t.cfg.Burst) {
			delete(t.buckets, addr)
		}
	}
}

// add registers s unless the table is full or closed.
func (t *whepTable) add(s *whepSession) error {
	var err error
	if cerr := t.call(func() {
		if len(t.sessions) >= t.cfg.MaxSessions {
			err = errTableFull
			return
		}
		t.sessions[s.id] = s
	}); cerr != nil {
		return cerr
	}
	return err
}

// full reports whether a new session would be refused.
func (t *whepTable) full() bool {
	full := false
	t.call(func() { full = len(t.sessions) >= t.cfg.MaxSessions })
	return full
}

func (t *whepTable) get(id string) *whepSession {
	var s *whepSession
	t.call(func() { s = t.sessions[id] })
	return s
}

func (t *whepTable) remove(id string) {
	t.call(func() { delete(t.sessions, id) })
}

// len is the number of sessions, for tests and metrics.
func (t *whepTable) len() int {
	n := 0
	t.call(func() { n = len(t.sessions) })
	return n
}
