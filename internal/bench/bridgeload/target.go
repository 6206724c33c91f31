package bridgeload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/ersmesh/ersmesh/bridge"
	"github.com/ersmesh/ersmesh/bridge/limit"
	"github.com/ersmesh/ersmesh/mesh"
)

// ServeTarget runs a bridge on loopback that joins the mesh through
// bootstrap, plus a pprof endpoint on its own port, and writes
// "READY <bridge URL> <pprof URL>\n" to ready. It returns when ctx ends.
func ServeTarget(ctx context.Context, bootstrap []ma.Multiaddr, ready io.Writer) error {
	// Warnings only: the bridge logs every join at info level, and
	// writing those would be most of what is measured.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	n, err := mesh.New(ctx, mesh.Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap, Server: true, Logger: log})
	if err != nil {
		return err
	}
	defer n.Close()
	b, err := bridge.New(bridge.Config{
		Host: n.Libp2p(), Resolver: mesh.NewResolver(n, mesh.ResolverOptions{}), Logger: log,
		// Every load client comes from 127.0.0.1 and each socket joins and
		// signals far faster than a browser: the per-address caps and the
		// per-socket rates (which guard a public bridge) are off, so what is
		// measured is the bridge's capacity.
		Limits: limit.Config{PerIP: -1, PerSubnet: -1, HandshakeRate: -1},
		Rates:  bridge.Rates{Joins: -1, Messages: -1, Candidates: -1},
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	psrv := &http.Server{Handler: mux}
	perr := make(chan error, 1)
	go func() { perr <- psrv.Serve(pl) }()
	berr := make(chan error, 1)
	go func() { berr <- b.Serve(l) }()
	fmt.Fprintf(ready, "READY http://%s http://%s\n", l.Addr(), pl.Addr())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-berr:
	}
	errs := []error{serveErr, b.Close(), psrv.Close()}
	if serveErr == nil {
		errs = append(errs, <-berr)
	}
	if err := <-perr; !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// logLevel is warn unless ERSMESH_BENCH_LOG names another level.
func logLevel() slog.Level {
	var l slog.Level = slog.LevelWarn
	if v := os.Getenv("ERSMESH_BENCH_LOG"); v != "" {
		l.UnmarshalText([]byte(v))
	}
	return l
}
