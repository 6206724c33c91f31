package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ersmesh/ersmesh/node"
)

// Defaults of Config.
const (
	DefaultQueueSize = 256
	DefaultTimeout   = 5 * time.Second
	// logEvery bounds the log lines about drops and failed posts: a dead
	// receiver must not flood the device's log.
	logEvery = 10 * time.Second
)

// Config of a Hook.
type Config struct {
	URL       string        // http:// or https:// receiver of POSTed events
	QueueSize int           // events waiting at most; default DefaultQueueSize
	Timeout   time.Duration // per POST; default DefaultTimeout
	Logger    *slog.Logger
}

// Hook delivers events in order, one POST each.
type Hook struct {
	url     string
	timeout time.Duration
	log     *slog.Logger
	client  *http.Client

	mu     sync.Mutex // guards closed against Send on a closed queue
	closed bool
	queue  chan node.Event

	dropped, failed, sent atomic.Uint64
	dropLog, failLog      rateLog

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// New validates cfg and starts the delivering goroutine.
func New(cfg Config) (*Hook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook URL %q: want http://host/path or https://host/path", cfg.URL)
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Hook{
		url: cfg.URL, timeout: cfg.Timeout, log: cfg.Logger,
		client: &http.Client{Timeout: cfg.Timeout},
		queue:  make(chan node.Event, cfg.QueueSize),
		done:   make(chan struct{}),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	go h.run()
	return h, nil
}

// Send queues ev for delivery, or drops it (counted, logged now and then)
// when the queue is full or the Hook is closed. It never blocks; it is
// what node.Config.OnEvent should call.
func (h *Hook) Send(ev node.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		select {
		case h.queue <- ev:
			return
		default:
		}
	}
	n := h.dropped.Add(1)
	if h.dropLog.due() {
		h.log.Warn("webhook receiver too slow: event dropped", "event", ev.Type, "room", ev.Room, "dropped_total", n, "url", h.url)
	}
}

// Stats returns the events posted, the posts that failed and the events
// dropped because the queue was full.
func (h *Hook) Stats() (sent, failed, dropped uint64) {
	return h.sent.Load(), h.failed.Load(), h.dropped.Load()
}

func (h *Hook) run() {
	defer close(h.done)
	for ev := range h.queue {
		if err := h.post(ev); err != nil {
			n := h.failed.Add(1)
			if h.failLog.due() {
				h.log.Warn("webhook post failed", "event", ev.Type, "room", ev.Room, "failed_total", n, "err", err)
			}
			continue
		}
		h.sent.Add(1)
	}
}

func (h *Hook) post(ev node.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ersmesh-device")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	// Drain a little so the connection can be reused; never all of it.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}

// Close stops taking events, gives the queued ones one Timeout to go out,
// abandons the rest and waits for the delivering goroutine. Idempotent.
func (h *Hook) Close() error {
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		close(h.queue)
		h.mu.Unlock()
		t := time.AfterFunc(h.timeout, h.cancel)
		<-h.done
		t.Stop()
		h.cancel()
		h.client.CloseIdleConnections()
	})
	if sent, failed, dropped := h.Stats(); failed+dropped > 0 {
		h.log.Warn("webhook closed with events lost", "sent", sent, "failed", failed, "dropped", dropped, "url", h.url)
	}
	return nil
}

// rateLog says yes at most once per logEvery.
type rateLog struct {
	mu   sync.Mutex
	last time.Time
}

func (r *rateLog) due() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.last) >= logEvery {
		r.last = now
		return true
	}
	return false
}

var eventsDesc = prometheus.NewDesc("ersmesh_device_webhook_events_total",
	"Device events given to the webhook, by result: sent, failed (an error or a non-2xx answer), dropped (the queue was full).",
	[]string{"result"}, nil)

type collector struct{ h *Hook }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- eventsDesc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	sent, failed, dropped := c.h.Stats()
	for result, n := range map[string]uint64{"sent": sent, "failed": failed, "dropped": dropped} {
		ch <- prometheus.MustNewConstMetric(eventsDesc, prometheus.CounterValue, float64(n), result)
	}
}

// RegisterMetrics exposes the webhook's delivery counts.
func (h *Hook) RegisterMetrics(reg prometheus.Registerer) error { return reg.Register(collector{h}) }
