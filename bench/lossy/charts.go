package lossy

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/qexchange/qexchange/bench/plot"
	"github.com/qexchange/qexchange/bench/results"
)

// cdfSeries turns each result's latency CDF into a chart series (x in ms).
func cdfSeries(rs []results.Result) []plot.Series {
	var out []plot.Series
	for _, r := range rs {
		if len(r.LatencyCDF) == 0 {
			continue
		}
		s := plot.Series{Name: r.Transport}
		for _, p := range r.LatencyCDF {
			s.Points = append(s.Points, plot.Point{X: p.LatencyUS / 1e3, Y: p.Fraction})
		}
		out = append(out, s)
	}
	return out
}

// fileSafe keeps a label usable as a file name ("loss-0.5%").
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, s)
}

// WriteRunCharts writes the latency CDF of one run to dir/cdf.png.
func WriteRunCharts(dir string, rep *results.Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	title := "one-way record latency"
	if rep.Link != nil {
		title += " — " + strings.TrimPrefix(shortLink(rep.Link), "link: ")
	}
	path := filepath.Join(dir, "cdf.png")
	series := cdfSeries(rep.Results)
	if len(rep.Seeds) > 1 {
		series = seedCDFSeries(rep.Seeds)
		title += fmt.Sprintf(", median of %d seeds", len(rep.Seeds))
	}
	return []string{path}, plot.LatencyCDF(path, title, series)
}

// latencyAt is the smallest latency of cdf whose fraction is >= q (NaN
// when the CDF is empty).
func latencyAt(cdf []results.CDFPoint, q float64) float64 {
	for _, p := range cdf {
		if p.Fraction >= q-1e-12 {
			return p.LatencyUS
		}
	}
	return math.NaN()
}

// seedCDFSeries draws each transport's latency CDF over several seeds: at
// every fraction the median latency over the seeds, with a band from the
// lowest to the highest.
func seedCDFSeries(seeds []results.SeedRun) []plot.Series {
	var order []string
	cdfs := map[string][][]results.CDFPoint{}
	for _, run := range seeds {
		for _, r := range run.Results {
			if len(r.LatencyCDF) == 0 {
				continue
			}
			if cdfs[r.Transport] == nil {
				order = append(order, r.Transport)
			}
			cdfs[r.Transport] = append(cdfs[r.Transport], r.LatencyCDF)
		}
	}
	var out []plot.Series
	for _, name := range order {
		s := plot.Series{Name: name}
		var fr, lo, hi []float64
		for _, q := range cdfFractions {
			vs := make([]float64, 0, len(cdfs[name]))
			for _, c := range cdfs[name] {
				vs = append(vs, latencyAt(c, q)/1e3)
			}
			sp := results.SpreadOf(vs)
			if sp.N == 0 {
				continue
			}
			s.Points = append(s.Points, plot.Point{X: sp.Median, Y: q})
			fr, lo, hi = append(fr, q), append(lo, sp.Min), append(hi, sp.Max)
		}
		// The band runs along fractions (y) between latencies (x).
		for _, p := range plot.RangeBand(fr, lo, hi) {
			s.Band = append(s.Band, plot.Point{X: p.Y, Y: p.X})
		}
		out = append(out, s)
	}
	return out
}

func shortLink(l *results.Link) string {
	s := fmt.Sprintf("loss %s, RTT %s", FormatLoss(l.Loss), l.RTT)
	if l.RateBits > 0 {
		s += ", " + FormatRate(l.RateBits)
	}
	if l.Load > 0 {
		s += fmt.Sprintf(", load %.2f", l.Load)
	}
	return s
}

// bandSeries collects a line's medians and ranges.
type bandSeries struct{ x, y, lo, hi []float64 }

func (b *bandSeries) add(x, y, lo, hi float64) {
	b.x, b.y, b.lo, b.hi = append(b.x, x), append(b.y, y), append(b.lo, lo), append(b.hi, hi)
}

// series is the line through the medians, with a band when any point has
// a range.
func (b *bandSeries) series(name string) plot.Series {
	s := plot.Series{Name: name}
	ranged := false
	for i := range b.x {
		s.Points = append(s.Points, plot.Point{X: b.x[i], Y: b.y[i]})
		ranged = ranged || b.hi[i] > b.lo[i]
	}
	if ranged {
		s.Band = plot.RangeBand(b.x, b.lo, b.hi)
	}
	return s
}

// WriteSweepCharts writes, into dir, one latency CDF per sweep point
// (cdf-<param>-<value>.png), p99 latency against the swept parameter
// (p99-vs-<param>.png, with the ideal limit) and throughput against it
// (throughput-vs-<param>.png).
func WriteSweepCharts(dir string, sw *results.Sweep, spec *Sweep) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	p99 := map[string]*bandSeries{}
	thr := map[string]*bandSeries{}
	var order []string
	for i, pt := range sw.Sweep {
		path := filepath.Join(dir, "cdf-"+fileSafe(spec.Label(i))+".png")
		title := "one-way record latency"
		if pt.Link != nil {
			title += " — " + shortLink(pt.Link)
		}
		series := cdfSeries(pt.Results)
		if len(pt.Seeds) > 1 {
			series = seedCDFSeries(pt.Seeds)
			title += fmt.Sprintf(", median of %d seeds", len(pt.Seeds))
		}
		if err := plot.LatencyCDF(path, title, series); err != nil {
			return files, err
		}
		files = append(files, path)
		for _, r := range pt.Results {
			if p99[r.Transport] == nil {
				p99[r.Transport] = &bandSeries{}
				thr[r.Transport] = &bandSeries{}
				order = append(order, r.Transport)
			}
			x := spec.PlotX(i)
			// One seed: its figures; several: the median with the range.
			if ts := summaryOf(pt.Summary, r.Transport); ts != nil {
				if ts.P99US.N > 0 {
					p99[r.Transport].add(x, ts.P99US.Median/1e3, ts.P99US.Min/1e3, ts.P99US.Max/1e3)
				}
				thr[r.Transport].add(x, ts.Mbps.Median, ts.Mbps.Min, ts.Mbps.Max)
				continue
			}
			if r.LatencyUS.Samples > 0 {
				v := r.LatencyUS.P99 / 1e3
				p99[r.Transport].add(x, v, v, v)
			}
			v := r.MBytesPerSec * 8
			thr[r.Transport].add(x, v, v, v)
		}
	}
	var ps, ts []plot.Series
	for _, n := range order {
		ps = append(ps, p99[n].series(n))
		ts = append(ts, thr[n].series(n))
	}
	path := filepath.Join(dir, "p99-vs-"+spec.Param+".png")
	if err := plot.Lines(path, "p99 one-way record latency", spec.XLabel(), "p99 latency (ms, log scale)", ps, true); err != nil {
		return files, err
	}
	files = append(files, path)
	path = filepath.Join(dir, "throughput-vs-"+spec.Param+".png")
	if err := plot.Lines(path, "delivered throughput (record payload)", spec.XLabel(), "Mbit/s", ts, false); err != nil {
		return files, err
	}
	return append(files, path), nil
}
