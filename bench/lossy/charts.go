package lossy

import (
	"fmt"
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
	return []string{path}, plot.LatencyCDF(path, title, cdfSeries(rep.Results))
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

// WriteSweepCharts writes, into dir, one latency CDF per sweep point
// (cdf-<param>-<value>.png), p99 latency against the swept parameter
// (p99-vs-<param>.png, with the ideal limit) and throughput against it
// (throughput-vs-<param>.png).
func WriteSweepCharts(dir string, sw *results.Sweep, spec *Sweep) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	p99 := map[string]*plot.Series{}
	thr := map[string]*plot.Series{}
	var order []string
	for i, pt := range sw.Sweep {
		path := filepath.Join(dir, "cdf-"+fileSafe(spec.Label(i))+".png")
		title := "one-way record latency"
		if pt.Link != nil {
			title += " — " + shortLink(pt.Link)
		}
		if err := plot.LatencyCDF(path, title, cdfSeries(pt.Results)); err != nil {
			return files, err
		}
		files = append(files, path)
		for _, r := range pt.Results {
			if p99[r.Transport] == nil {
				p99[r.Transport] = &plot.Series{Name: r.Transport}
				thr[r.Transport] = &plot.Series{Name: r.Transport}
				order = append(order, r.Transport)
			}
			x := spec.PlotX(i)
			if r.LatencyUS.Samples > 0 {
				p99[r.Transport].Points = append(p99[r.Transport].Points, plot.Point{X: x, Y: r.LatencyUS.P99 / 1e3})
			}
			thr[r.Transport].Points = append(thr[r.Transport].Points, plot.Point{X: x, Y: r.MBytesPerSec * 8})
		}
	}
	var ps, ts []plot.Series
	for _, n := range order {
		ps = append(ps, *p99[n])
		ts = append(ts, *thr[n])
	}
	path := filepath.Join(dir, "p99-vs-"+spec.Param+".png")
	if err := plot.Lines(path, "p99 one-way record latency", spec.XLabel(), "p99 latency (ms, log scale)", ps, true); err != nil {
		return files, err
	}
	files = append(files, path)
	path = filepath.Join(dir, "throughput-vs-"+spec.Param+".png")
	if err := plot.Lines(path, "throughput (record payload)", spec.XLabel(), "Mbit/s", ts, false); err != nil {
		return files, err
	}
	return append(files, path), nil
}
