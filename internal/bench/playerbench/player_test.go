package playerbench

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ersmesh/ersmesh/internal/browsertest"
)

// TestOneRunEach checks the harness end to end with one cold and one warm
// join: the page's stamps are read and give a positive time.
func TestOneRunEach(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Runs: 1})
	if errors.Is(err, browsertest.ErrNoBrowser) && os.Getenv("CI") != "true" {
		t.Skipf("no Chromium on this machine, and not in CI (where it is a failure): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cold) != 1 || len(res.Warm) != 1 || res.Cold[0] <= 0 || res.Warm[0] <= 0 {
		t.Fatalf("got %+v, want one positive time each", res)
	}
}
