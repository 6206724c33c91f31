package telemetry

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ops holds one role's metrics registry and readiness checks.
type Ops struct {
	reg *prometheus.Registry

	mu     sync.Mutex
	checks map[string]func() error
}

// New returns an Ops whose registry already has the Go runtime and process
// collectors, with the role as a constant label on everything.
func New(role string) *Ops {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ersmesh_info", Help: "Always 1; the role label says which role this process runs.",
		ConstLabels: prometheus.Labels{"role": role},
	}, func() float64 { return 1 }))
	return &Ops{reg: reg, checks: map[string]func() error{}}
}

// Registerer is where the role's packages register their metrics.
func (o *Ops) Registerer() prometheus.Registerer { return o.reg }

// Gatherer reads the metrics, for tests.
func (o *Ops) Gatherer() prometheus.Gatherer { return o.reg }

// Ready adds a readiness check: /readyz answers 503 while any check
// returns an error, with the check's name and error.
func (o *Ops) Ready(name string, check func() error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.checks[name] = check
}

// Register adds /metrics, /healthz and /readyz to mux.
func (o *Ops) Register(mux *http.ServeMux) {
	mux.Handle("/metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if bad := o.notReady(); len(bad) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(bad, "\n"))
			return
		}
		fmt.Fprintln(w, "ready")
	})
}

// Handler serves the three endpoints on their own.
func (o *Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	o.Register(mux)
	return mux
}

func (o *Ops) notReady() []string {
	o.mu.Lock()
	names := make([]string, 0, len(o.checks))
	for n := range o.checks {
		names = append(names, n)
	}
	checks := make(map[string]func() error, len(o.checks))
	for n, c := range o.checks {
		checks[n] = c
	}
	o.mu.Unlock()
	sort.Strings(names)
	var bad []string
	for _, n := range names {
		if err := checks[n](); err != nil {
			bad = append(bad, n+": "+err.Error())
		}
	}
	return bad
}
