// Package benchreport turns the raw results that `ersmesh-bench` writes
// under <out>/bench/*.json into docs/benchmarks.md and its PNG plots
// (gonum.org/v1/plot). It only reads those files and writes the report: it
// measures nothing, so the report can be regenerated from saved results.
package benchreport
