package keylimit

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Refusals. Callers that count or log refusals by reason branch on them.
var (
	// ErrPerKey: the key holds Config.PerKey already.
	ErrPerKey = errors.New("keylimit: this key holds its maximum")
	// ErrTotal: all keys together hold Config.Total already.
	ErrTotal = errors.New("keylimit: the maximum is held over all keys")
	// ErrRate: the key's token bucket is empty.
	ErrRate = errors.New("keylimit: too fast for this key")
	// ErrFull: the table holds Config.MaxKeys keys and none could be
	// forgotten.
	ErrFull = errors.New("keylimit: too many keys tracked")
)

// WhenFull says what a Limiter does with a new key when its table holds
// MaxKeys keys even after forgetting the idle ones.
type WhenFull int

const (
	// Refuse the new key (ErrFull): the keys already tracked keep their
	// state, a newcomer waits for a sweep.
	Refuse WhenFull = iota
	// Forget every key that holds nothing, even those whose bucket is
	// still refilling, and admit the new key: nobody is locked out, at
	// the price of fresh buckets for the forgotten keys (which a flood
	// of fresh keys would get anyway).
	Forget
)

// Config of a Limiter. Zero fields turn their limit off, except MaxKeys
// and SweepEvery, which have defaults.
type Config[K comparable] struct {
	// PerKey caps what one key holds at once (Acquire); 0: no cap.
	PerKey int
	// Total caps what all keys hold together; 0: no cap.
	Total int
	// Rate and Burst are each key's token bucket (Allow, Admit); a Rate of
	// 0 means no bucket. Burst is at least 1.
	Rate  rate.Limit
	Burst int
	// Exempt, if not nil, names keys that PerKey does not bound (Total
	// still does): a node's own records, for example.
	Exempt func(K) bool
	// MaxKeys bounds the table; default 16384. WhenFull says what
	// happens to a new key beyond it.
	MaxKeys  int
	WhenFull WhenFull
	// SweepEvery is how often idle keys are forgotten; default a minute.
	// A key is idle when it holds nothing and its bucket is full: it
	// holds nothing a new entry would not.
	SweepEvery time.Duration
}

const (
	defaultMaxKeys    = 16384
	defaultSweepEvery = time.Minute
)

// Limiter is a table of keys with their holds and token buckets. It is
// safe for concurrent use; one mutex guards the table, for a few map
// operations per call.
type Limiter[K comparable] struct {
	cfg Config[K]

	mu        sync.Mutex
	keys      map[K]*entry
	held      int
	nextSweep time.Time
}

type entry struct {
	holds  int
	bucket *rate.Limiter // nil without a Rate
}

// New returns a Limiter.
func New[K comparable](cfg Config[K]) *Limiter[K] {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = defaultMaxKeys
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = defaultSweepEvery
	}
	cfg.Burst = max(1, cfg.Burst)
	return &Limiter[K]{cfg: cfg, keys: make(map[K]*entry)}
}

// Acquire takes one hold for k, or says which cap refused it. Each
// successful Acquire needs one Release.
func (l *Limiter[K]) Acquire(k K) error {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, err := l.entryLocked(k, now)
	if err != nil {
		return err
	}
	if err := l.capsLocked(k, e); err != nil {
		l.forgetIdleLocked(k, e, now)
		return err
	}
	e.holds++
	l.held++
	return nil
}

// Check says what Acquire would say of k now, without taking a hold: for
// a caller asked before the work it admits is set up (pion's TURN quota
// handler). Acquire must still be called, and may still refuse.
func (l *Limiter[K]) Check(k K) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[k]
	if e == nil {
		e = &entry{}
	}
	return l.capsLocked(k, e)
}

// Release gives back a hold that Acquire or Admit took.
func (l *Limiter[K]) Release(k K) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[k]
	if e == nil || e.holds == 0 {
		return
	}
	e.holds--
	l.held--
	l.forgetIdleLocked(k, e, now)
}

// Allow takes one token from k's bucket now.
func (l *Limiter[K]) Allow(k K) error { return l.AllowN(k, time.Now(), 1) }

// AllowN takes n tokens from k's bucket at now; without a Rate it allows
// everything a table with room for k allows.
func (l *Limiter[K]) AllowN(k K, now time.Time, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, err := l.entryLocked(k, now)
	if err != nil {
		return err
	}
	if e.bucket != nil && !e.bucket.AllowN(now, n) {
		return ErrRate
	}
	return nil
}

// Admit takes a hold and a token for k together: the caps are checked
// first, so a key at its cap spends no token. release gives the hold back;
// calling it more than once is harmless.
func (l *Limiter[K]) Admit(k K) (release func(), err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, err := l.entryLocked(k, now)
	if err != nil {
		return nil, err
	}
	if err := l.capsLocked(k, e); err != nil {
		l.forgetIdleLocked(k, e, now)
		return nil, err
	}
	if e.bucket != nil && !e.bucket.AllowN(now, 1) {
		return nil, ErrRate
	}
	e.holds++
	l.held++
	var once sync.Once
	return func() { once.Do(func() { l.Release(k) }) }, nil
}

// Bucket returns k's token bucket while k holds something, for a hot path
// (a packet meter) that takes tokens without the table's lock; nil if k
// holds nothing or there is no Rate. The bucket stays k's until k's last
// hold is released.
func (l *Limiter[K]) Bucket(k K) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.keys[k]; e != nil && e.holds > 0 {
		return e.bucket
	}
	return nil
}

// Tokens is what k's bucket holds at now, without taking any: a key not
// tracked has a full bucket. A caller that must decide before it knows
// whether to spend (a guess is only counted once found wrong) reads this,
// then takes a token with Allow.
func (l *Limiter[K]) Tokens(k K, now time.Time) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.keys[k]; e != nil && e.bucket != nil {
		return e.bucket.TokensAt(now)
	}
	return float64(l.cfg.Burst)
}

// HeldBy is what k holds now.
func (l *Limiter[K]) HeldBy(k K) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.keys[k]; e != nil {
		return e.holds
	}
	return 0
}

// Held is what all keys hold now.
func (l *Limiter[K]) Held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held
}

// Len is the number of keys tracked: those holding something and those
// whose bucket is refilling.
func (l *Limiter[K]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// Sweep forgets the keys that are idle at now. The Limiter sweeps by
// itself every SweepEvery and when its table is full; Sweep is for tests
// and for owners that want memory back sooner.
func (l *Limiter[K]) Sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
}

func (l *Limiter[K]) capsLocked(k K, e *entry) error {
	if l.cfg.PerKey > 0 && e.holds >= l.cfg.PerKey && (l.cfg.Exempt == nil || !l.cfg.Exempt(k)) {
		return ErrPerKey
	}
	if l.cfg.Total > 0 && l.held >= l.cfg.Total {
		return ErrTotal
	}
	return nil
}

// entryLocked finds or makes k's entry, sweeping on schedule and making
// room when the table is full.
func (l *Limiter[K]) entryLocked(k K, now time.Time) (*entry, error) {
	if !now.Before(l.nextSweep) {
		l.sweepLocked(now)
	}
	if e := l.keys[k]; e != nil {
		return e, nil
	}
	if len(l.keys) >= l.cfg.MaxKeys {
		l.sweepLocked(now)
	}
	if len(l.keys) >= l.cfg.MaxKeys && l.cfg.WhenFull == Forget {
		for key, e := range l.keys {
			if e.holds == 0 {
				delete(l.keys, key)
			}
		}
	}
	if len(l.keys) >= l.cfg.MaxKeys {
		return nil, ErrFull
	}
	e := &entry{}
	if l.cfg.Rate > 0 {
		e.bucket = rate.NewLimiter(l.cfg.Rate, l.cfg.Burst)
	}
	l.keys[k] = e
	return e, nil
}

func (l *Limiter[K]) sweepLocked(now time.Time) {
	l.nextSweep = now.Add(l.cfg.SweepEvery)
	for k, e := range l.keys {
		l.forgetIdleLocked(k, e, now)
	}
}

// forgetIdleLocked drops k if it holds nothing a new entry would not.
func (l *Limiter[K]) forgetIdleLocked(k K, e *entry, now time.Time) {
	if e.holds == 0 && (e.bucket == nil || e.bucket.TokensAt(now) >= float64(l.cfg.Burst)) {
		delete(l.keys, k)
	}
}

// KeyForAddr is the key under which a rate limit or cap should count a
// client address: the address itself for IPv4, its /64 for IPv6, because
// one IPv6 subscriber is handed at least a /64 and picks addresses in it
// at will (RFC 4941 temporary addresses, RFC 6177). IPv4-mapped IPv6 is
// keyed as the IPv4 address it is.
func KeyForAddr(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}
