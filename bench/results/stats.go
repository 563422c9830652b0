package results

import (
	"fmt"
	"math"
	"sort"
)

// SchemaVersion is the JSON documents' schema_version. 2 added repeated
// rounds, seeds, the calibration and the summary (version 1 had one run per
// transport and no version field).
const SchemaVersion = 2

// MaxRawSpread is the raw baselines' relative spread above which the
// table warns that the machine is too noisy for the figures to be trusted.
const MaxRawSpread = 0.20

// Spread is the median and range of one figure over repeated runs (rounds
// or seeds).
type Spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// SpreadOf summarises vs; NaN values (not measured) are skipped. The
// median of an even count is the mean of the middle two.
func SpreadOf(vs []float64) Spread {
	s := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return Spread{}
	}
	sort.Float64s(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// Relative is the range as a fraction of the median ((max-min)/median); 0
// when the median is 0.
func (s Spread) Relative() float64 {
	if s.Median == 0 {
		return 0
	}
	return (s.Max - s.Min) / math.Abs(s.Median)
}

// Format prints "median [min-max]" with the given verb for each number
// ("%.2f"); only the median with one value.
func (s Spread) Format(verb string) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return fmt.Sprintf(verb, s.Median)
	}
	return fmt.Sprintf(verb+" ["+verb+"-"+verb+"]", s.Median, s.Min, s.Max)
}

// WithinNoise reports whether a ratio's median differs from 1 (no
// difference) by no more than the noise floor, a relative run-to-run
// variation. A noise floor of 0 (not measured) never calls a difference
// noise.
func WithinNoise(ratio Spread, noiseFloor float64) bool {
	if ratio.N == 0 || noiseFloor <= 0 {
		return false
	}
	return math.Abs(ratio.Median-1) <= noiseFloor+1e-9 // float slack at the boundary
}

// RelativeDiff is |a-b| relative to their mean: the run-to-run variation
// of two runs of the same thing. 0 when both are 0.
func RelativeDiff(a, b float64) float64 {
	m := (a + b) / 2
	if m == 0 {
		return 0
	}
	return math.Abs(a-b) / m
}

// Rotate returns round r's run order: items rotated left by r, so over
// len(items) rounds every item runs first once.
func Rotate(items []string, r int) []string {
	n := len(items)
	out := make([]string, n)
	if n == 0 {
		return out
	}
	for i := range items {
		out[i] = items[(i+r)%n]
	}
	return out
}
