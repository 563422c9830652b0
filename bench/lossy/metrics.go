package lossy

import (
	"math"
	"sort"

	"github.com/qexchange/qexchange/bench/hist"
	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/bench/workload"
)

// SummariseChannels reduces the per-channel measurements to the figures
// of results.Channels (see there for the definitions). nil when empty.
func SummariseChannels(chs []workload.ChannelStats) *results.Channels {
	if len(chs) == 0 {
		return nil
	}
	mbps := make([]float64, len(chs))
	stall := make([]float64, len(chs))
	var total, secs float64
	for i, c := range chs {
		mbps[i] = c.Mbps()
		stall[i] = float64(c.StallNs) / 1e6
		total += stall[i]
		secs += c.Seconds()
	}
	sort.Float64s(mbps)
	sort.Float64s(stall)
	s := &results.Channels{
		Count:         len(chs),
		MinMbps:       mbps[0],
		MedianMbps:    quantile(mbps, 0.5),
		StallTotalMS:  total,
		StallMaxMS:    stall[len(stall)-1],
		StallMedianMS: quantile(stall, 0.5),
		StallP99MS:    quantile(stall, 0.99),
	}
	if secs > 0 {
		s.StallFraction = total / 1e3 / secs
	}
	return s
}

// quantile of sorted values: linear interpolation between closest ranks.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// cdfFractions are the CDF's points: every percent, then the tail (where
// head-of-line blocking shows) in finer steps, then the maximum.
var cdfFractions = func() []float64 {
	var f []float64
	for i := 1; i <= 99; i++ {
		f = append(f, float64(i)/100)
	}
	return append(f, 0.995, 0.998, 0.999, 0.9995, 0.9999, 1)
}()

// CDF extracts about 100 points (latency in µs, fraction of records at
// or below it) from a latency histogram, enough to redraw the CDF from
// the JSON. Points with equal latency are merged (the larger fraction
// wins). nil for an empty histogram.
func CDF(h *hist.Histogram) []results.CDFPoint {
	if h == nil || h.Count() == 0 {
		return nil
	}
	out := make([]results.CDFPoint, 0, len(cdfFractions))
	for _, q := range cdfFractions {
		p := results.CDFPoint{LatencyUS: float64(h.Quantile(q)) / 1e3, Fraction: q}
		if n := len(out); n > 0 && out[n-1].LatencyUS >= p.LatencyUS {
			out[n-1].Fraction = q
			continue
		}
		out = append(out, p)
	}
	return out
}
