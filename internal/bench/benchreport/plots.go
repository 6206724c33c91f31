package benchreport

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/ersmesh/ersmesh/internal/bench/benchstat"
	"github.com/ersmesh/ersmesh/internal/bench/meshsim"
	"github.com/ersmesh/ersmesh/internal/bench/relaybench"
	"github.com/ersmesh/ersmesh/internal/bench/soak"
)

const plotW, plotH = 6 * vg.Inch, 3.6 * vg.Inch

// headroom raises the top of the y axis above the data so that the legend,
// drawn at the top, covers none of it.
func headroom(p *plot.Plot, series ...plotter.XYs) {
	var top float64
	for _, xys := range series {
		for _, xy := range xys {
			top = max(top, xy.Y)
		}
	}
	p.Y.Max = max(p.Y.Max, 1.6*top)
}

func save(p *plot.Plot, dir, name string) (string, error) {
	if err := p.Save(plotW, plotH, filepath.Join(dir, name)); err != nil {
		return "", fmt.Errorf("plot %s: %w", name, err)
	}
	return name, nil
}

// meshLatencyPlot: publish and cold resolve (median, p95) against N, with
// the 3-round-trip target.
func meshLatencyPlot(dir string, rs []*meshsim.Result) (string, error) {
	p := plot.New()
	p.Title.Text = "Mesh: publish and cold resolve vs mesh size"
	p.X.Label.Text = "nodes"
	p.Y.Label.Text = "ms"
	series := map[string]plotter.XYs{}
	names := []string{"resolve median", "resolve p95", "publish median", "publish p95"}
	for _, r := range rs {
		res := benchstat.Summarize(opMillis(r.Resolve))
		pub := benchstat.Summarize(opMillis(r.Publish))
		n := float64(r.N)
		series["resolve median"] = append(series["resolve median"], plotter.XY{X: n, Y: res.Median})
		series["resolve p95"] = append(series["resolve p95"], plotter.XY{X: n, Y: res.P95})
		series["publish median"] = append(series["publish median"], plotter.XY{X: n, Y: pub.Median})
		series["publish p95"] = append(series["publish p95"], plotter.XY{X: n, Y: pub.P95})
	}
	var args []any
	for _, name := range names {
		args = append(args, name, series[name])
		headroom(p, series[name])
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return "", err
	}
	if len(rs) > 0 {
		rtt3 := 3 * 2 * rs[0].LatencyMillis
		target, err := plotter.NewLine(plotter.XYs{{X: float64(rs[0].N), Y: rtt3}, {X: float64(rs[len(rs)-1].N), Y: rtt3}})
		if err != nil {
			return "", err
		}
		target.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		target.Color = color.Gray{Y: 100}
		p.Add(target)
		p.Legend.Add(fmt.Sprintf("3 round trips (%.0f ms)", rtt3), target)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	return save(p, dir, "mesh-latency.png")
}

// meshChurnPlot: median lookup time in each round after the kill (or the
// silencing), per N.
func meshChurnPlot(dir, name, title, xlabel string, rs []*meshsim.Result, rounds func(*meshsim.Result) []meshsim.Round) (string, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "median lookup ms (round of one lookup per room)"
	var args []any
	for _, r := range rs {
		var xys plotter.XYs
		for _, round := range rounds(r) {
			xys = append(xys, plotter.XY{X: round.AtMillis / 1000, Y: benchstat.Summarize(opMillis(round.Lookups)).Median})
		}
		args = append(args, fmt.Sprintf("n=%d", r.N), xys)
		headroom(p, xys)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return "", err
	}
	p.Y.Min = 0
	p.Legend.Top = true
	return save(p, dir, name)
}

// cdfPlot draws the empirical CDF of each sample, on a log x axis for
// samples that span decades.
func cdfPlot(dir, name, title, xlabel string, logX bool, samples ...namedSample) (string, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "fraction of samples ≤ x"
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	var args []any
	for _, s := range samples {
		xs := slices.Clone(s.values)
		slices.Sort(xs)
		var xys plotter.XYs
		for i, x := range xs {
			if x <= 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: float64(i+1) / float64(len(xs))})
		}
		if len(xys) == 0 {
			continue
		}
		args = append(args, s.name, xys)
	}
	if err := plotutil.AddLines(p, args...); err != nil {
		return "", err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min, p.Y.Max = 0, 1
	return save(p, dir, name)
}

type namedSample struct {
	name   string
	values []float64
}

func opMillis(ops []meshsim.Op) []float64 {
	out := make([]float64, 0, len(ops))
	for _, op := range ops {
		out = append(out, op.Millis)
	}
	return out
}

// soakPlot: resident memory, goroutines and descriptors against time.
func soakPlot(dir string, r *soak.Result) (string, error) {
	p := plot.New()
	p.Title.Text = "Soak: footprint while viewers join and leave"
	p.X.Label.Text = "minutes"
	p.Y.Label.Text = "count, or MiB"
	var rss, gor, fds, viewers plotter.XYs
	for _, s := range r.Samples {
		m := s.T / 60
		rss = append(rss, plotter.XY{X: m, Y: float64(s.RSSKiB) / 1024})
		gor = append(gor, plotter.XY{X: m, Y: float64(s.Goroutines)})
		fds = append(fds, plotter.XY{X: m, Y: float64(s.FDs)})
		viewers = append(viewers, plotter.XY{X: m, Y: float64(s.Viewers)})
	}
	headroom(p, rss, gor, fds, viewers)
	if err := plotutil.AddLines(p, "resident MiB", rss, "goroutines", gor, "file descriptors", fds, "viewers", viewers); err != nil {
		return "", err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	return save(p, dir, "soak.png")
}

// relayPlot: latency added at each depth of the relay tree (median, p95).
func relayPlot(dir string, r *relaybench.Result) (string, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Relay tree: %d viewers, %g Mbit/s uplink", r.Joined, r.BudgetMbit)
	p.X.Label.Text = "depth (1: served by the device)"
	p.Y.Label.Text = "added ms"
	var med, p95 plotter.XYs
	for _, d := range r.Depths {
		x := float64(d.Depth)
		if d.AddedMs.Count == 0 {
			continue
		}
		med = append(med, plotter.XY{X: x, Y: d.AddedMs.Median})
		p95 = append(p95, plotter.XY{X: x, Y: d.AddedMs.P95})
	}
	headroom(p, med, p95)
	if err := plotutil.AddLinePoints(p, "added latency median", med, "added latency p95", p95); err != nil {
		return "", err
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	return save(p, dir, "relay.png")
}
