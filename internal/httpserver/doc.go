// Package httpserver is the HTTP listener of the roles' own endpoints: the
// ops endpoints (/metrics, /healthz, /readyz), the device's control API
// beside them, and a load target's pprof. It owns the timeouts that keep
// a slow or idle client from holding a connection (no slowloris) and the
// lifecycle: Start listens and serves on a goroutine of its own, Close
// stops serving and waits for that goroutine. (The bridge serves its
// listeners itself, with its per-address limits; package role starts and
// waits for them the same way.)
//
// It knows nothing of what it serves.
package httpserver
