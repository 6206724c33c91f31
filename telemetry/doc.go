// Package telemetry serves what an operator's tools read from every role:
// Prometheus metrics at /metrics, liveness at /healthz, readiness at
// /readyz. Each role's package defines its own metrics against the
// Registerer given here; telemetry only owns the registry and the endpoints.
package telemetry
