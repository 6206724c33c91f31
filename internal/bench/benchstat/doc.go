// Package benchstat summarises benchmark samples (median, p95, p99) the same
// way for every ersmesh benchmark, so figures in docs/benchmarks.md compare.
// It holds no state and does no I/O.
package benchstat
