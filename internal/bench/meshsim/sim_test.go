package meshsim

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestSmallMesh runs the whole simulation on a tiny mesh with no latency:
// it checks the harness measures what it says (rooms found, hops and
// messages counted, the offline device gone by its expiry), not how fast.
func TestSmallMesh(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	if testing.Short() {
		t.Skip("short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		N: 16, Latency: time.Millisecond, Rooms: 3, LookupsPerRoom: 2,
		ChurnWindow: time.Second, ChurnEvery: time.Second, OfflineTTL: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Publish) != 3 || len(res.Resolve) != 6 {
		t.Fatalf("%d publications and %d lookups, want 3 and 6", len(res.Publish), len(res.Resolve))
	}
	for _, op := range append(res.Publish, res.Resolve...) {
		if !op.OK {
			t.Errorf("operation failed: %+v", op)
		}
	}
	for _, op := range res.Resolve {
		if op.Msgs < 1 && op.Hops != 0 {
			t.Errorf("a lookup that did not find the record locally sent no DHT request: %+v", op)
		}
		if op.Hops < 0 {
			t.Errorf("no record holder answered a successful lookup: %+v", op)
		}
	}
	if res.RecordHolders.Min < 2 {
		t.Errorf("records are stored on %v nodes at least, want several", res.RecordHolders.Min)
	}
	if res.Killed != 4 || len(res.Churn) == 0 || res.Silenced != 4 || len(res.Silent) == 0 {
		t.Errorf("killed %d nodes, %d churn rounds; silenced %d, %d rounds", res.Killed, len(res.Churn), res.Silenced, len(res.Silent))
	}
	if res.Offline.GoneAfter < 0 || res.Offline.GoneAfter > res.Offline.ExpiresAfter+2000 {
		t.Errorf("offline device: %+v, want gone by its record's expiry", res.Offline)
	}
}
