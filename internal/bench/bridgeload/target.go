package bridgeload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/internal/httpserver"
	"github.com/ersmesh/ersmesh/role"
)

// ServeTarget runs a bridge on loopback that joins the mesh through
// bootstrap, plus a pprof endpoint on its own port, and writes
// "READY <bridge URL> <pprof URL>\n" to ready. It returns when ctx ends.
func ServeTarget(ctx context.Context, bootstrap []ma.Multiaddr, ready io.Writer) error {
	// Warnings only: the bridge logs every join at info level, and
	// writing those would be most of what is measured.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	b, err := role.NewBridge(ctx, role.BridgeConfig{
		Mesh: role.MeshConfig{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: role.Addrs(bootstrap)},
		HTTP: "127.0.0.1:0",
		// Every load client comes from 127.0.0.1 and each socket joins and
		// signals far faster than a browser: the per-address caps and the
		// per-socket rates (which guard a public bridge) are off, so what is
		// measured is the bridge's capacity.
		Limits: limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1},
		Tune:   func(c *bridge.Config) { c.Rates = bridge.Rates{Joins: -1, Messages: -1, Candidates: -1} },
		Logger: log,
	})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	prof := httpserver.New(httpserver.Config{Name: "pprof", Addr: "127.0.0.1:0", Handler: mux, Logger: log})
	if err := errors.Join(b.Start(ctx), prof.Start()); err != nil {
		return errors.Join(err, prof.Close(), b.Close())
	}
	fmt.Fprintf(ready, "READY %s http://%s\n", b.URL(), prof.Addr())
	<-ctx.Done()
	return errors.Join(prof.Close(), b.Close())
}

// logLevel is warn unless ERSMESH_BENCH_LOG names another level.
func logLevel() slog.Level {
	var l slog.Level = slog.LevelWarn
	if v := os.Getenv("ERSMESH_BENCH_LOG"); v != "" {
		l.UnmarshalText([]byte(v))
	}
	return l
}
