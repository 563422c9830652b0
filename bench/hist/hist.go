// Package hist is a small HDR-style log-linear latency histogram: fixed
// buckets, no allocation when recording, mergeable, with percentiles.
//
// Values are nanoseconds. Values below 2^SubBits ns (128 ns) are counted
// exactly; above that every power of two is split into 2^SubBits (128)
// equal buckets, so a bucket is at most 1/128 (0.78%) of its values wide and
// a reported percentile (the bucket's midpoint) is within 0.4% of a value
// that was recorded. The range ends at 2^MaxExp ns (about 68.7 s); larger
// values are counted in the last bucket and still set Max exactly.
//
// A Histogram is not safe for concurrent use: keep one per goroutine and
// Merge them at the end.
package hist

import (
	"math"
	"math/bits"
)

const (
	// SubBits sets the precision: 2^SubBits buckets per power of two.
	SubBits = 7
	// MaxExp: values of 2^MaxExp ns (68.7 s) and above share the last
	// bucket.
	MaxExp = 36

	subCount = 1 << SubBits
	// NumBuckets is the number of counters (about 30 KiB per histogram).
	NumBuckets = (MaxExp - SubBits + 1) * subCount
	maxValue   = int64(1)<<MaxExp - 1
)

// Histogram counts values in log-linear buckets.
type Histogram struct {
	counts [NumBuckets]uint64
	total  uint64
	sum    float64
	min    int64
	max    int64
}

// New returns an empty histogram.
func New() *Histogram { return &Histogram{min: math.MaxInt64} }

// index maps a value in [0, maxValue] to its bucket.
func index(v int64) int {
	u := uint64(v)
	if u < subCount {
		return int(u)
	}
	e := bits.Len64(u) - SubBits - 1 // >= 0: how far to shift to keep SubBits+1 bits
	return (e+1)*subCount + int(u>>uint(e)) - subCount
}

// bounds returns the smallest and largest value of bucket i.
func bounds(i int) (lo, hi int64) {
	if i < subCount {
		return int64(i), int64(i)
	}
	e := i/subCount - 1
	sub := int64(i%subCount + subCount)
	lo = sub << uint(e)
	hi = lo + int64(1)<<uint(e) - 1
	return lo, hi
}

// Record adds one value (negative values count as 0).
func (h *Histogram) Record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	if ns < h.min {
		h.min = ns
	}
	if ns > h.max {
		h.max = ns
	}
	v := ns
	if v > maxValue {
		v = maxValue
	}
	h.counts[index(v)]++
	h.total++
	h.sum += float64(ns)
}

// Merge adds o's counts into h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	for i, c := range o.counts {
		if c != 0 {
			h.counts[i] += c
		}
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{min: math.MaxInt64} }

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest recorded value (exact), 0 if empty.
func (h *Histogram) Max() int64 {
	if h.total == 0 {
		return 0
	}
	return h.max
}

// Min is the smallest recorded value (exact), 0 if empty.
func (h *Histogram) Min() int64 {
	if h.total == 0 {
		return 0
	}
	return h.min
}

// Mean is the average recorded value, 0 if empty.
func (h *Histogram) Mean() float64 {
	if h.total == 0 {
		return 0
	}
	return h.sum / float64(h.total)
}

// Quantile returns the value at quantile q in [0, 1] (0.99 = p99): the
// midpoint of the bucket holding the ceil(q x count)-th smallest value,
// clamped to [Min, Max]. 0 if empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, hi := bounds(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
