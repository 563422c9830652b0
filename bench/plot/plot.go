// Package plot draws the benchmark's charts (PNG or SVG, by the file
// name's extension) from result data, with gonum/plot.
package plot

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one line: a transport's points. Band, if set, is the outline
// of a shaded area drawn under the line in a light shade of its colour
// (e.g. the min-max range over seeds: the lower edge left to right, then
// the upper edge right to left).
type Series struct {
	Name   string
	Points []Point
	Band   []Point
}

// Point is one (x, y) pair.
type Point struct{ X, Y float64 }

// LatencyCDF draws latency CDFs (x: latency in ms, log scale; y: fraction
// of records at or below it) and writes them to path.
func LatencyCDF(path, title string, series []Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "one-way latency (ms, log scale)"
	p.Y.Label.Text = "fraction of records"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	if err := addLines(p, series, false, func(pt Point) (float64, bool) { return pt.X, pt.X > 0 }); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

// Lines draws one line per series with markers (a sweep: x is the swept
// setting) and writes them to path. logY selects a log scale for y.
func Lines(path, title, xLabel, yLabel string, series []Series, logY bool) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	if err := addLines(p, series, true, func(pt Point) (float64, bool) { return pt.X, !logY || pt.Y > 0 }); err != nil {
		return err
	}
	if logY && p.Y.Min > 0 && p.Y.Max > p.Y.Min {
		// Whole decades, so the log axis always has labelled ticks.
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(p.Y.Min)))
		p.Y.Max = math.Pow(10, math.Ceil(math.Log10(p.Y.Max)))
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

func addLines(p *plot.Plot, series []Series, markers bool, keep func(Point) (float64, bool)) error {
	for i, s := range series {
		xys := make(plotter.XYs, 0, len(s.Points))
		for _, pt := range s.Points {
			x, ok := keep(pt)
			if !ok || math.IsNaN(pt.Y) || math.IsInf(pt.Y, 0) {
				continue
			}
			xys = append(xys, plotter.XY{X: x, Y: pt.Y})
		}
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot: series %s: %w", s.Name, err)
		}
		line.Color = colorFor(i)
		line.Width = vg.Points(1.5)
		if s.Name == "ideal" {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			line.Color = color.Gray{Y: 90}
		}
		if err := addBand(p, s.Band, line.Color, keep); err != nil {
			return fmt.Errorf("plot: series %s band: %w", s.Name, err)
		}
		p.Add(line)
		p.Legend.Add(s.Name, line)
		if markers {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return err
			}
			sc.Color = line.Color
			p.Add(sc)
		}
	}
	return nil
}

// addBand draws outline as a filled polygon in a translucent c; points the
// axes cannot show are left out.
func addBand(p *plot.Plot, outline []Point, c color.Color, keep func(Point) (float64, bool)) error {
	xys := make(plotter.XYs, 0, len(outline))
	for _, pt := range outline {
		x, ok := keep(pt)
		if !ok || math.IsNaN(pt.Y) || math.IsInf(pt.Y, 0) {
			continue
		}
		xys = append(xys, plotter.XY{X: x, Y: pt.Y})
	}
	if len(xys) < 3 {
		return nil
	}
	poly, err := plotter.NewPolygon(xys)
	if err != nil {
		return err
	}
	r, g, b, _ := c.RGBA()
	poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(b >> 8), A: 0x40}
	poly.LineStyle.Width = 0
	p.Add(poly)
	return nil
}

// RangeBand is the outline of the band between lo and hi drawn over xs
// (all three of the same length, xs in drawing order): along lo, then
// back along hi.
func RangeBand(xs, lo, hi []float64) []Point {
	out := make([]Point, 0, 2*len(xs))
	for i := range xs {
		out = append(out, Point{X: xs[i], Y: lo[i]})
	}
	for i := len(xs) - 1; i >= 0; i-- {
		out = append(out, Point{X: xs[i], Y: hi[i]})
	}
	return out
}

func colorFor(i int) color.Color { return plotutil.Color(i) }
