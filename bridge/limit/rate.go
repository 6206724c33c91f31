package limit

import (
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token bucket for one socket's events of one kind. The zero
// value and a nil *Rate allow everything.
type Rate struct{ lim *rate.Limiter }

// NewRate allows perSecond events with burst in reserve; perSecond < 0
// allows everything.
func NewRate(perSecond float64, burst int) *Rate {
	if perSecond < 0 {
		return &Rate{}
	}
	return &Rate{lim: rate.NewLimiter(rate.Limit(perSecond), max(1, burst))}
}

// Allow takes one token if there is one.
func (r *Rate) Allow() bool {
	if r == nil || r.lim == nil {
		return true
	}
	return r.lim.Allow()
}

// Delay takes one token and says how long to wait before acting on it:
// for events answered late rather than refused. ok is false when the wait
// would exceed maxWait; then no token is taken.
func (r *Rate) Delay(maxWait time.Duration) (wait time.Duration, ok bool) {
	if r == nil || r.lim == nil {
		return 0, true
	}
	res := r.lim.Reserve()
	d := res.Delay()
	if !res.OK() || d > maxWait {
		res.Cancel()
		return 0, false
	}
	return d, true
}
