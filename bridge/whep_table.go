package bridge

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/time/rate"

	"github.com/ersmesh/ersmesh/internal/keylimit"
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
// addresses. Full buckets are forgotten at every sweep; a new address
// beyond the bound is refused rather than let the table grow.
const (
	maxBuckets    = 16384
	sweepInterval = 30 * time.Second
)

var (
	errTableClosed = errors.New("the bridge is shutting down")
	errTableFull   = errors.New("this bridge relays as many WHEP sessions as it may")
)

// whepTable is the WHEP session table and the POST rate limiter. One
// goroutine (run) owns the session map; everyone else hands it closures
// through call, so no lock guards it.
type whepTable struct {
	cfg  WHEPConfig
	ops  chan func()
	quit chan struct{}
	done chan struct{}

	// posts is a token bucket per client (keylimit.KeyForAddr: an IPv6
	// client's /64); it guards itself.
	posts *keylimit.Limiter[netip.Prefix]

	// Owned by run.
	sessions map[string]*whepSession
}

func newWHEPTable(cfg WHEPConfig) *whepTable {
	cfg.setDefaults()
	t := &whepTable{
		cfg: cfg, ops: make(chan func()), quit: make(chan struct{}), done: make(chan struct{}),
		sessions: make(map[string]*whepSession),
		posts: keylimit.New(keylimit.Config[netip.Prefix]{
			Rate: rate.Limit(float64(cfg.RatePerMinute) / 60), Burst: cfg.Burst,
			MaxKeys: maxBuckets, WhenFull: keylimit.Refuse, SweepEvery: sweepInterval,
		}),
	}
	go t.run()
	return t
}

func (t *whepTable) run() {
	defer close(t.done)
	for {
		select {
		case f := <-t.ops:
			f()
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
// client is over its rate (or so many clients are refilling that a new one
// cannot be tracked).
func (t *whepTable) allow(addr string, now time.Time) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false // net/http's RemoteAddr is always an address
	}
	return t.posts.AllowN(keylimit.KeyForAddr(a), now, 1) == nil
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
