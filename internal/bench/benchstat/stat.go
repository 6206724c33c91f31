package benchstat

import (
	"math"
	"slices"
	"time"
)

// Summary describes a sample. Quantiles use the nearest-rank method: the
// reported value is one that was actually measured.
type Summary struct {
	Count  int     `json:"count"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	P95    float64 `json:"p95"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
}

// Summarize returns the summary of xs; the zero Summary for no samples.
func Summarize(xs []float64) Summary {
	if len(xs) == 0 {
		return Summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	return Summary{
		Count:  len(s),
		Min:    s[0],
		Median: Quantile(s, 0.5),
		P95:    Quantile(s, 0.95),
		P99:    Quantile(s, 0.99),
		Max:    s[len(s)-1],
		Mean:   sum / float64(len(s)),
	}
}

// Quantile returns the nearest-rank q-quantile (0 < q <= 1) of sorted.
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// Millis converts durations to milliseconds, the unit of every latency in
// the reports.
func Millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}
