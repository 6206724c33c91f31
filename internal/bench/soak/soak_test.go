package soak

import (
	"context"
	"testing"
	"time"
)

// TestShortSoak runs the harness for a few seconds: sessions come and go
// through both bridges, samples are taken, and all viewers are gone at the
// end.
func TestShortSoak(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Run(ctx, Config{Duration: 4 * time.Second, Interval: 500 * time.Millisecond, Life: time.Second, Sample: time.Second, Progress: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sessions < 4 || r.Failed != 0 {
		t.Errorf("%d sessions, %d failed; want several, none failed", r.Sessions, r.Failed)
	}
	if len(r.Samples) < 3 {
		t.Errorf("%d samples over 4 s, want one a second", len(r.Samples))
	}
	if r.After.Viewers != 0 || r.After.Goroutines <= 0 || r.After.FDs <= 0 || r.After.RSSKiB <= 0 {
		t.Errorf("after the run: %+v; want no viewers and a measured footprint", r.After)
	}
	t.Log(r)
}
