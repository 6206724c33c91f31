// Package ratelog writes log lines about events that strangers can cause
// as often as they like (refusals, drops, quota hits) at a bounded rate,
// so that a flood costs the log a few lines a second however hard it
// pushes. Each line it writes says how many it left out since the last.
//
// Logger bounds lines over all callers; Keyed adds a bound per key (per
// peer, per client address, per user) in a bounded table (package
// keylimit).
package ratelog
