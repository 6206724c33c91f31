package telemetry

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestEndpoints(t *testing.T) {
	o := New("bridge")
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ersmesh_test_total", Help: "test"})
	o.Registerer().MustRegister(c)
	c.Add(3)
	var dhtErr error = errors.New("no peers in the routing table")
	o.Ready("dht", func() error { return dhtErr })
	srv := httptest.NewServer(o.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "ersmesh_test_total 3") || !strings.Contains(body, `ersmesh_info{role="bridge"} 1`) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics %d:\n%.400s", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "dht: no peers") {
		t.Errorf("/readyz not ready: %d %q", code, body)
	}
	dhtErr = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz ready: %d", code)
	}
}
