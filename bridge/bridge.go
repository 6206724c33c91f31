package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/bridge/access"
	"github.com/ersmesh/ersmesh/bridge/admin"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/internal/keylimit"
	"github.com/ersmesh/ersmesh/internal/ratelog"
	"github.com/ersmesh/ersmesh/mesh"
	"github.com/ersmesh/ersmesh/signalwire"
	"github.com/ersmesh/ersmesh/telemetry"
	"github.com/ersmesh/ersmesh/turnserver"
	"github.com/ersmesh/ersmesh/web"
)

// DefaultAddr is where ERS 2.0 listened, and so where ERS players look.
const DefaultAddr = ":4545"

// Resolver finds the device serving a room (mesh.Resolver does).
type Resolver interface {
	Resolve(ctx context.Context, room string) (peer.AddrInfo, error)
	Forget(room string)
}

// Config configures a Bridge.
type Config struct {
	Host     host.Host // the bridge's libp2p host, to open streams to devices
	Resolver Resolver
	// STUNServers are handed to browsers and devices, e.g. "stun:stun.example.org:3478".
	STUNServers []string
	// TURN, when set, mints fresh TURN credentials for every viewer; the
	// browser gets them in "turnservers" and the device in the join, so
	// both ends can relay. Nil means no TURN.
	TURN   *turnserver.Issuer
	Socket socketio.Config
	// WHEP tunes the WHEP endpoint (/whep/).
	WHEP WHEPConfig
	// Limits guards the ERS endpoint: connections per address and subnet,
	// the handshake rate, allowed page origins.
	Limits limit.Config
	// Rates bounds each socket's events; zero fields take their defaults.
	Rates Rates
	// Access holds ERS viewer tokens and allowed rooms; nil: any viewer
	// may join any room.
	Access *access.Store
	// AdminAllow lists who may use the admin endpoint; nil: loopback.
	AdminAllow []netip.Prefix
	// Ops, if set, gets the bridge's metrics (unless Metrics says
	// otherwise) and its /metrics, /healthz and /readyz are served beside
	// the admin commands.
	Ops *telemetry.Ops
	// Metrics, if set, is where the bridge registers its metrics (and
	// its resolver's, when that has a RegisterMetrics method).
	Metrics prometheus.Registerer
	// TLS, when set, makes Serve speak HTTPS (HTTP/2 and HTTP/1.1) with
	// it: the page, the ERS protocol over WSS, WHEP and register alike
	// (tlscert.Manager.TLSConfig gives one).
	TLS *tls.Config
	// HSTS is the max-age of the Strict-Transport-Security header on HTTPS
	// responses; zero sends none.
	HSTS time.Duration
	// Version is reported by the admin endpoint.
	Version string
	Logger  *slog.Logger
}

// Rates are per-socket event rates (events per second). Kinesis Video
// allows 5 offers and 20 candidates a second per connection; ours are no
// looser. A negative rate turns that limit off.
type Rates struct {
	// Joins: ERS players rejoin about once a second while a room is empty,
	// so the burst lets a page start fast and the rate paces the loop.
	Joins float64 // default 1, burst 5
	// Messages other than candidates (answers, offers, mute, ...).
	Messages float64 // default 5, burst 5
	// Candidates: a browser trickles a burst of them at the start.
	Candidates float64 // default 20, burst 40
}

func (r Rates) withDefaults() Rates {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&r.Joins, 1)
	def(&r.Messages, 5)
	def(&r.Candidates, 20)
	return r
}

// Bridge serves browsers over HTTP. Create it with New, serve it with Serve
// (or mount Handler), stop it with Close.
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	sio     *socketio.Server
	gate    *limit.Gate
	conns   *limit.ConnCap // HTTP connections per address, every listener
	mux     *http.ServeMux
	servers []*http.Server // guarded by mu
	metrics *metrics
	refused *prometheus.CounterVec // by the limits, by reason
	access  *access.Store

	ctx    context.Context // ends at Close; parent of every session
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // device sessions
	views  map[string]*viewer
	whep   *whepTable // WHEP sessions and the POST rate limiter
	// protect keeps connections to devices with viewers from being trimmed.
	protect *mesh.Protector
}

// New creates a bridge; it does not listen yet.
func New(cfg Config) (*Bridge, error) {
	if cfg.Host == nil || cfg.Resolver == nil {
		return nil, errors.New("bridge needs a libp2p host and a resolver")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Socket.Logger == nil {
		cfg.Socket.Logger = cfg.Logger
	}
	cfg.Rates = cfg.Rates.withDefaults()
	b := &Bridge{cfg: cfg, log: cfg.Logger, views: make(map[string]*viewer), access: cfg.Access, whep: newWHEPTable(cfg.WHEP),
		protect: mesh.NewProtector(cfg.Host, ProtectTag)}
	if b.access == nil {
		b.access = access.NewStore(false)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.sio = socketio.NewServer(cfg.Socket, (*ersHandler)(b))
	b.metrics = newMetrics()
	b.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ersmesh_bridge_refused_total", Help: "Requests refused by the bridge's limits, by reason.",
	}, []string{"reason"})
	// A flood of refusals is counted in full but logged a line per client
	// per ten seconds, and a few lines a second over all clients.
	refusalLog := ratelog.NewKeyed[netip.Prefix](b.log, 10*time.Second, time.Second/5, 5, 4096)
	b.gate = limit.NewGate(cfg.Limits, func(reason string, r *http.Request) {
		b.refused.WithLabelValues(reason).Inc()
		a, _ := limit.Addr(r)
		refusalLog.Info(keylimit.KeyForAddr(a), "refused a client", "reason", reason, "addr", r.RemoteAddr, "origin", r.Header.Get("Origin"))
	})
	b.conns = limit.NewConnCap(b.gate.Config().HTTPConnsPerIP, func(addr string) {
		b.refused.WithLabelValues("http_conns_per_ip").Inc()
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			refusalLog.Info(keylimit.KeyForAddr(ap.Addr()), "refused a client", "reason", "http_conns_per_ip", "addr", addr)
		}
	})
	if cfg.Metrics == nil && cfg.Ops != nil {
		cfg.Metrics = cfg.Ops.Registerer()
	}
	if cfg.Metrics != nil {
		if err := b.RegisterMetrics(cfg.Metrics); err != nil {
			return nil, fmt.Errorf("bridge metrics: %w", err)
		}
		if r, ok := cfg.Resolver.(interface {
			RegisterMetrics(prometheus.Registerer) error
		}); ok {
			if err := r.RegisterMetrics(cfg.Metrics); err != nil {
				return nil, fmt.Errorf("resolver metrics: %w", err)
			}
		}
	}
	b.mux = http.NewServeMux()
	b.mux.Handle("/socket.io/", b.gate.Wrap(b.sio))
	b.mux.HandleFunc("/whep/", b.serveWHEP)
	b.mux.HandleFunc(RegisterPath, b.serveRegister)
	b.mux.Handle("/", web.HandlerWithSession(b.pageSession))
	return b, nil
}

// pageSession makes the Socket.IO session handed out with the player page
// (web.HandlerWithSession), whose WebSocket then opens while the page
// loads, without a handshake request first: only for a page that plays a
// room through this bridge over ERS, as index.html's bootstrap does, and
// only within the limits a handshake request meets (origin, handshakes
// per address, sessions not yet connected). Beyond them the page comes
// without a session, and its player handshakes as before.
func (b *Bridge) pageSession(r *http.Request) string {
	q := r.URL.Query()
	if q.Get("room") == "" || q.Has("bridge") || q.Has("bridges") || (q.Get("protocol") != "" && q.Get("protocol") != "ers") {
		return ""
	}
	if !b.gate.OriginAllowed(r) || !b.gate.Handshake(r) {
		return ""
	}
	s, err := b.sio.Handshake()
	if err != nil {
		b.log.Debug("no session for the player page", "addr", r.RemoteAddr, "err", err)
		return ""
	}
	return s
}

// Handler serves the player page, the ERS endpoint and WHEP (/whep/).
func (b *Bridge) Handler() http.Handler { return b.mux }

// Serve answers HTTP on l until Close: the player page, the ERS endpoint,
// WHEP and register; over TLS when Config.TLS is set.
func (b *Bridge) Serve(l net.Listener) error {
	if b.cfg.TLS == nil {
		return b.serve(l, b.mux, nil, false)
	}
	return b.serve(l, b.httpsHandler(), b.cfg.TLS, false)
}

// ServeTLSConns is Serve for a listener whose connections have done their
// TLS handshake already (tlsmux.Mux.HTTP, when TURN shares the HTTPS
// port); Config.TLS must be set.
func (b *Bridge) ServeTLSConns(l net.Listener) error {
	if b.cfg.TLS == nil {
		l.Close()
		return errors.New("bridge: ServeTLSConns without Config.TLS")
	}
	return b.serve(l, b.httpsHandler(), b.cfg.TLS, true)
}

func (b *Bridge) httpsHandler() http.Handler {
	if b.cfg.HSTS > 0 {
		return hsts(b.mux, b.cfg.HSTS)
	}
	return b.mux
}

// ServePlain answers plain HTTP on l with h until Close: with TLS on, the
// port-80 listener, where ACME challenges arrive and everything else is
// sent to HTTPS (tlscert.Manager.HTTPHandler).
func (b *Bridge) ServePlain(l net.Listener, h http.Handler) error { return b.serve(l, h, nil, false) }

// hsts tells browsers to come back over HTTPS only, for maxAge.
func hsts(next http.Handler, maxAge time.Duration) http.Handler {
	v := "max-age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", v)
		next.ServeHTTP(w, r)
	})
}

// ServeAdmin answers the ERS-style admin commands (package admin) on l
// until Close; only Config.AdminAllow addresses are served.
func (b *Bridge) ServeAdmin(l net.Listener) error {
	h := admin.Handler(b.access, b.cfg.Version, b.cfg.AdminAllow, b.log)
	if b.cfg.Ops != nil {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		b.cfg.Ops.Register(mux)
		h = mux
	}
	return b.serve(l, h, nil, false)
}

// serve answers on l with h until Close; over TLS when tc is set, done by
// the server unless the listener's connections come handshaken.
func (b *Bridge) serve(l net.Listener, h http.Handler, tc *tls.Config, handshaken bool) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		l.Close()
		// Closed before it served: nothing failed.
		return nil
	}
	srv := &http.Server{
		Handler:   limit.BodyDeadline(h, b.gate.Config().BodyTimeout),
		ConnState: b.conns.ConnState,
		// No slowloris: headers must arrive promptly, and an idle
		// keep-alive connection is let go. WebSockets, once upgraded, are
		// timed by the Socket.IO heartbeat instead.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
		TLSConfig:         tc,
	}
	b.servers = append(b.servers, srv)
	b.mu.Unlock()
	var err error
	if tc != nil && !handshaken {
		// HTTP/2 (set up from tc's NextProtos, by Serve too): the page's
		// many small files and concurrent WHEP requests share one
		// connection. WebSockets stay on HTTP/1.1 (Go does not offer
		// them over HTTP/2).
		err = srv.ServeTLS(l, "", "")
	} else {
		err = srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close tells every viewer goodbye, ends every device session and stops
// serving; it waits for what the bridge started.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	servers := b.servers
	b.mu.Unlock()
	b.cancel()
	for _, s := range b.whep.close() {
		s.end("bridge shutting down")
	}
	err := b.sio.Close()
	for _, srv := range servers {
		// Requests in flight get a moment to finish; connections that never
		// sent a request (which Shutdown would wait on for 5 s) and anything
		// slower are then cut.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if serr := srv.Shutdown(ctx); serr != nil {
			b.log.Debug("HTTP connections cut at shutdown", "err", serr)
			if cerr := srv.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("stop HTTP server: %w", cerr)
			}
		}
		cancel()
	}
	b.wg.Wait()
	return err
}

// stunServers are the STUN servers handed to every browser and device.
func (b *Bridge) stunServers() []signalwire.ICEServer {
	var stun []signalwire.ICEServer
	for _, s := range b.cfg.STUNServers {
		stun = append(stun, signalwire.ICEServer{URLs: []string{s}})
	}
	return stun
}

// iceServers returns the STUN servers (for every join and WHEP Link
// headers) and, with TURN configured, the TURN servers with credentials of
// their own for viewer sid. Only a join the bridge's access rules let
// through gets them, and the browser only once the device accepted; they
// are short-lived (turnserver.DefaultCredentialTTL), and the TURN server
// caps allocations per client address, so fresh sockets buy no more.
func (b *Bridge) iceServers(sid string) (stun, turn []signalwire.ICEServer) {
	stun = b.stunServers()
	if b.cfg.TURN == nil || len(b.cfg.TURN.URLs) == 0 {
		return stun, nil
	}
	cr, err := b.cfg.TURN.Issue(sid)
	if err != nil {
		b.log.Warn("cannot mint TURN credentials; viewer gets STUN only", "sid", sid, "err", err)
		return stun, nil
	}
	turn = []signalwire.ICEServer{{URLs: b.cfg.TURN.URLs, Username: cr.Username, Credential: cr.Password}}
	return stun, turn
}
