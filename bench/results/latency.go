package results

import "github.com/qexchange/qexchange/bench/hist"

// LatencyOf is a histogram of nanoseconds as percentiles in µs; zero when
// nothing was measured.
func LatencyOf(h *hist.Histogram) Latency {
	if h == nil || h.Count() == 0 {
		return Latency{}
	}
	us := func(ns int64) float64 { return float64(ns) / 1e3 }
	return Latency{
		P50: us(h.Quantile(0.50)), P99: us(h.Quantile(0.99)), P999: us(h.Quantile(0.999)),
		Max: us(h.Max()), Samples: h.Count(),
	}
}
