package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ersmesh/ersmesh/bridge/socketio"
	"github.com/ersmesh/ersmesh/signal"
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
	Socket      socketio.Config
	WHEP        WHEPConfig
	Logger      *slog.Logger
}

// Bridge serves browsers over HTTP. Create it with New, serve it with Serve
// (or mount Handler), stop it with Close.
type Bridge struct {
	cfg Config
	log *slog.Logger
	sio *socketio.Server
	mux *http.ServeMux
	srv *http.Server

	ctx    context.Context // ends at Close; parent of every session
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // device sessions
	views  map[string]*viewer
	whep   *whepTable // WHEP sessions and the POST rate limiter
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
	b := &Bridge{cfg: cfg, log: cfg.Logger, views: make(map[string]*viewer), whep: newWHEPTable(cfg.WHEP)}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.sio = socketio.NewServer(cfg.Socket, (*ersHandler)(b))
	b.mux = http.NewServeMux()
	b.mux.Handle("/socket.io/", b.sio)
	b.mux.HandleFunc("/whep/", b.serveWHEP)
	b.mux.Handle("/", web.Handler())
	return b, nil
}

// Handler serves the player page, the ERS endpoint and WHEP (/whep/).
func (b *Bridge) Handler() http.Handler { return b.mux }

// Serve answers HTTP on l until Close.
func (b *Bridge) Serve(l net.Listener) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return http.ErrServerClosed
	}
	b.srv = &http.Server{
		Handler:           b.mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}
	srv := b.srv
	b.mu.Unlock()
	err := srv.Serve(l)
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
	srv := b.srv
	b.mu.Unlock()
	b.cancel()
	for _, s := range b.whep.close() {
		s.end("bridge shutting down")
	}
	err := b.sio.Close()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := srv.Shutdown(ctx); serr != nil && err == nil {
			err = fmt.Errorf("stop HTTP server: %w", serr)
		}
	}
	b.wg.Wait()
	return err
}

// iceServers are the STUN (and, once the bridge runs one, TURN) servers
// handed to viewers and devices: in the ERS stunservers/turnservers events,
// in every join, and as WHEP Link headers. TURN entries with short-lived
// credentials belong here too; every consumer takes them as they are.
func (b *Bridge) iceServers() []signal.ICEServer {
	var out []signal.ICEServer
	for _, s := range b.cfg.STUNServers {
		out = append(out, signal.ICEServer{URLs: []string{s}})
	}
	return out
}
