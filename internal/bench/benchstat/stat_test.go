package benchstat

import "testing"

func TestSummarize(t *testing.T) {
	xs := make([]float64, 0, 100)
	for i := 100; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	s := Summarize(xs)
	if s.Count != 100 || s.Min != 1 || s.Max != 100 || s.Median != 50 || s.P95 != 95 || s.P99 != 99 || s.Mean != 50.5 {
		t.Fatalf("Summarize(1..100) = %+v", s)
	}
	if xs[0] != 100 {
		t.Fatal("Summarize sorted its input in place")
	}
	if got := Summarize([]float64{7}); got.Median != 7 || got.P99 != 7 {
		t.Fatalf("one sample: %+v", got)
	}
	if got := Summarize(nil); got.Count != 0 {
		t.Fatalf("no samples: %+v", got)
	}
}
