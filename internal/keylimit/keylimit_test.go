package keylimit

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func TestCaps(t *testing.T) {
	l := New(Config[string]{PerKey: 2, Total: 3})
	must := func(k string, want error) {
		t.Helper()
		if err := l.Acquire(k); !errors.Is(err, want) {
			t.Fatalf("Acquire(%s) = %v, want %v", k, err, want)
		}
	}
	must("a", nil)
	must("a", nil)
	must("a", ErrPerKey)
	must("b", nil)
	must("c", ErrTotal)
	if l.Held() != 3 || l.HeldBy("a") != 2 || l.HeldBy("c") != 0 {
		t.Fatalf("held %d, a %d, c %d", l.Held(), l.HeldBy("a"), l.HeldBy("c"))
	}
	l.Release("a")
	must("c", nil)
	l.Release("zzz") // not held: nothing happens
	for _, k := range []string{"a", "b", "c"} {
		l.Release(k)
	}
	l.Release("a") // more releases than holds change nothing
	if l.Held() != 0 || l.Len() != 0 {
		t.Fatalf("after every release: held %d, %d keys tracked", l.Held(), l.Len())
	}
}

func TestCheck(t *testing.T) {
	l := New(Config[string]{PerKey: 1, Total: 2})
	if err := l.Check("a"); err != nil {
		t.Fatalf("Check of a fresh key: %v", err)
	}
	if l.Len() != 0 || l.Held() != 0 {
		t.Fatal("Check took something")
	}
	l.Acquire("a")
	if err := l.Check("a"); !errors.Is(err, ErrPerKey) {
		t.Fatalf("Check of a key at its cap: %v, want ErrPerKey", err)
	}
	l.Acquire("b")
	if err := l.Check("c"); !errors.Is(err, ErrTotal) {
		t.Fatalf("Check with the total held: %v, want ErrTotal", err)
	}
}

func TestExempt(t *testing.T) {
	l := New(Config[string]{PerKey: 1, Total: 3, Exempt: func(k string) bool { return k == "self" }})
	for range 3 {
		if err := l.Acquire("self"); err != nil {
			t.Fatalf("exempt key refused: %v", err)
		}
	}
	if err := l.Acquire("self"); !errors.Is(err, ErrTotal) {
		t.Fatalf("exempt key beyond the total: %v, want ErrTotal", err)
	}
}

func TestRate(t *testing.T) {
	l := New(Config[string]{Rate: rate.Every(time.Hour), Burst: 2})
	now := time.Now()
	if l.AllowN("a", now, 1) != nil || l.AllowN("a", now, 1) != nil {
		t.Fatal("burst refused")
	}
	if err := l.AllowN("a", now, 1); !errors.Is(err, ErrRate) {
		t.Fatalf("beyond the burst: %v, want ErrRate", err)
	}
	if l.AllowN("b", now, 1) != nil {
		t.Fatal("another key refused")
	}
	if l.AllowN("a", now.Add(time.Hour), 1) != nil {
		t.Fatal("no token after an hour")
	}
	// No Rate: no bucket.
	free := New(Config[string]{})
	for range 1000 {
		if free.Allow("a") != nil {
			t.Fatal("refused without a rate")
		}
	}
}

// TestAdmit: the caps are checked before the bucket, so a key at its cap
// spends no token; release is idempotent.
func TestAdmit(t *testing.T) {
	l := New(Config[string]{PerKey: 1, Rate: rate.Every(time.Hour), Burst: 2})
	rel, err := l.Admit("a")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := l.Admit("a"); !errors.Is(err, ErrPerKey) {
			t.Fatalf("second hold: %v, want ErrPerKey", err)
		}
	}
	rel()
	rel()
	if l.Held() != 0 {
		t.Fatalf("held %d after a double release", l.Held())
	}
	rel, err = l.Admit("a") // the second token: not spent by the refusals
	if err != nil {
		t.Fatalf("refusals spent tokens: %v", err)
	}
	rel()
	if _, err := l.Admit("a"); !errors.Is(err, ErrRate) {
		t.Fatalf("third admission in the burst of 2: %v, want ErrRate", err)
	}
	// The key is refilling: it stays tracked, so closing its holds does
	// not reset its rate.
	if l.Len() != 1 {
		t.Fatalf("%d keys tracked, want the refilling one", l.Len())
	}
}

// TestTableBounded plays a flood of fresh keys: the table never grows
// past MaxKeys.
func TestTableBounded(t *testing.T) {
	for _, policy := range []WhenFull{Refuse, Forget} {
		l := New(Config[int]{Rate: rate.Every(time.Hour), Burst: 1, MaxKeys: 100, WhenFull: policy})
		refused := 0
		for k := range 1000 {
			if errors.Is(l.Allow(k), ErrFull) {
				refused++
			}
		}
		if l.Len() > 100 {
			t.Fatalf("policy %d: %d keys tracked, bound 100", policy, l.Len())
		}
		switch policy {
		case Refuse:
			if refused != 900 {
				t.Errorf("Refuse: %d new keys refused, want 900", refused)
			}
			if l.Allow(5) == nil {
				t.Error("Refuse forgot a refilling key")
			}
		case Forget:
			if refused != 0 {
				t.Errorf("Forget: %d new keys refused", refused)
			}
		}
	}
}

// TestForgetKeepsHolders: a full table forgets only keys that hold
// nothing; when every key holds something, a new key is refused.
func TestForgetKeepsHolders(t *testing.T) {
	l := New(Config[int]{MaxKeys: 10, WhenFull: Forget})
	for k := range 10 {
		if err := l.Acquire(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Acquire(99); !errors.Is(err, ErrFull) {
		t.Fatalf("new key with every key holding: %v, want ErrFull", err)
	}
	l.Release(3)
	if err := l.Acquire(99); err != nil {
		t.Fatalf("new key after a release: %v", err)
	}
	if l.HeldBy(0) != 1 {
		t.Fatal("a holder was forgotten")
	}
}

func TestSweep(t *testing.T) {
	l := New(Config[string]{Rate: 10, Burst: 5, SweepEvery: time.Hour})
	now := time.Now()
	l.AllowN("a", now, 5)
	if err := l.Acquire("b"); err != nil {
		t.Fatal(err)
	}
	l.Sweep(now)
	if l.Len() != 2 {
		t.Fatalf("%d keys after a sweep with a bucket refilling and a holder, want 2", l.Len())
	}
	l.Sweep(now.Add(time.Second)) // 10/s refills 5 in half a second
	if l.Len() != 1 || l.HeldBy("b") != 1 {
		t.Fatalf("%d keys after the bucket refilled, want only the holder", l.Len())
	}
	// The limiter sweeps by itself on schedule: c has refilled by the
	// time d comes, an hour after the last sweep.
	l.AllowN("c", now, 5)
	l.AllowN("d", now.Add(2*time.Hour), 1)
	if l.Len() != 2 || l.HeldBy("b") != 1 {
		t.Fatalf("%d keys tracked, want the holder b and the refilling d", l.Len())
	}
}

func TestBucket(t *testing.T) {
	l := New(Config[string]{PerKey: 2, Rate: 1000, Burst: 1000})
	if l.Bucket("u") != nil {
		t.Fatal("bucket of a key that holds nothing")
	}
	l.Acquire("u")
	l.Acquire("u")
	b := l.Bucket("u")
	if b == nil || !b.AllowN(time.Now(), 1000) || b.AllowN(time.Now(), 1000) {
		t.Fatal("the bucket does not meter")
	}
	l.Release("u")
	if l.Bucket("u") != b {
		t.Fatal("a key still holding got another bucket")
	}
	l.Release("u")
	// Empty bucket, nothing held: kept until it refills, so the meter
	// cannot be reset by releasing and acquiring again.
	l.Acquire("u")
	if l.Bucket("u") != b {
		t.Fatal("the meter was reset by releasing every hold")
	}
}

func TestConcurrent(t *testing.T) {
	l := New(Config[int]{PerKey: 3, Total: 20, Rate: 1e6, Burst: 1000})
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				rel, err := l.Admit((g + i) % 10)
				if err != nil {
					continue
				}
				mu.Lock()
				peak = max(peak, l.Held())
				mu.Unlock()
				rel()
			}
		})
	}
	wg.Wait()
	if peak > 20 || l.Held() != 0 {
		t.Fatalf("peak %d (cap 20), %d held at the end", peak, l.Held())
	}
}

func TestKeyForAddr(t *testing.T) {
	cases := map[string]string{
		"192.0.2.1":            "192.0.2.1/32",
		"::ffff:192.0.2.1":     "192.0.2.1/32",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
	}
	for in, want := range cases {
		if got := KeyForAddr(netip.MustParseAddr(in)).String(); got != want {
			t.Errorf("KeyForAddr(%s) = %s, want %s", in, got, want)
		}
	}
	// An attacker rotating through its /64 is one key.
	l := New(Config[netip.Prefix]{PerKey: 2})
	for i := range 3 {
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1))
		err := l.Acquire(KeyForAddr(a))
		if (i < 2) != (err == nil) {
			t.Fatalf("address %d of one /64: %v", i, err)
		}
	}
}
