package role

import (
	"log/slog"
	"net/http"

	"github.com/ersmesh/ersmesh/internal/httpserver"
	"github.com/ersmesh/ersmesh/telemetry"
)

// served is what the device, bootstrap and turn roles share: the stack of
// what the role started, its logger, its metrics and readiness checks,
// and the server of its ops endpoints.
type served struct {
	st     stack
	log    *slog.Logger
	ops    *telemetry.Ops
	opsSrv *httpserver.Server
}

func newServed(role string, log *slog.Logger) served {
	return served{log: log, ops: telemetry.New(role)}
}

// serveOps serves h (the ops endpoints, and whatever the role mounts
// beside them) on addr; "" means none.
func (s *served) serveOps(addr string, h http.Handler) (err error) {
	s.opsSrv, err = s.st.serve("ops", addr, h, s.log)
	return err
}

// Ops holds the role's metrics and readiness checks.
func (s *served) Ops() *telemetry.Ops { return s.ops }

// OpsAddr is where the ops endpoints are served ("" none).
func (s *served) OpsAddr() string { return s.opsSrv.Addr() }

// Close stops everything the role started, newest first, and waits for
// it; later calls return the first call's error.
func (s *served) Close() error { return s.st.close() }
