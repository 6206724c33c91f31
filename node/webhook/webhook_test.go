package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/ersmesh/ersmesh/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x/y", "http://", "::"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// TestDeliversInOrder: events arrive one POST each, in the order sent;
// a receiver's error answer counts as a failure, and the next event still
// goes out.
func TestDeliversInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev node.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		got = append(got, ev.Room)
		mu.Unlock()
		if ev.Room == "r2" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	h, err := New(Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"r0", "r1", "r2", "r3"} {
		h.Send(node.Event{Type: node.EventStarted, Room: r})
	}
	h.Close() // delivers what is queued
	h.Send(node.Event{Type: node.EventStopped, Room: "late"})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 4 || got[0] != "r0" || got[3] != "r3" {
		t.Errorf("received %v, want r0..r3 in order", got)
	}
	if sent, failed, dropped := h.Stats(); sent != 3 || failed != 1 || dropped != 1 {
		t.Errorf("stats sent=%d failed=%d dropped=%d, want 3, 1 (the 500), 1 (after Close)", sent, failed, dropped)
	}
	reg := prometheus.NewRegistry()
	if err := h.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 3 {
		t.Errorf("metrics: %v, %v; want sent, failed and dropped", mfs, err)
	}
}

// TestStalledReceiver: Send never blocks on a receiver that never answers;
// the overflow is dropped, and Close gives up after one Timeout.
func TestStalledReceiver(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	h, err := New(Config{URL: srv.URL, QueueSize: 4, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			h.Send(node.Event{Type: node.EventPeerStreamStarted, Room: "r"})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on a stalled receiver")
	}
	h.Close()
	if _, _, dropped := h.Stats(); dropped < 1000-4-1 {
		t.Errorf("dropped %d of 1000 with a queue of 4", dropped)
	}
}
