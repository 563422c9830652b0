package hist

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIndexBoundsRoundTrip(t *testing.T) {
	prevHi := int64(-1)
	for i := range NumBuckets {
		lo, hi := bounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if index(lo) != i || index(hi) != i {
			t.Fatalf("bucket %d [%d,%d]: index(lo)=%d index(hi)=%d", i, lo, hi, index(lo), index(hi))
		}
		if lo >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subCount+1e-12 {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d", i, lo, hi, subCount)
		}
		prevHi = hi
	}
	if prevHi != maxValue {
		t.Fatalf("last bucket ends at %d, want %d", prevHi, maxValue)
	}
}

func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestQuantileAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []struct {
		name string
		gen  func() int64
	}{
		{"uniform-1us-1ms", func() int64 { return 1000 + r.Int64N(999_000) }},
		{"lognormal", func() int64 { return int64(math.Exp(r.NormFloat64()*2 + 11)) }},
		{"exponential-100us", func() int64 { return int64(r.ExpFloat64() * 100_000) }},
		{"wide-1us-60s", func() int64 { return int64(math.Exp(r.Float64()*math.Log(6e7))) * 1000 }},
	} {
		t.Run(dist.name, func(t *testing.T) {
			h := New()
			vals := make([]int64, 200_000)
			for i := range vals {
				vals[i] = dist.gen()
				h.Record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 0.9999} {
				want := exactQuantile(vals, q)
				got := h.Quantile(q)
				if want >= 1000 && math.Abs(float64(got-want))/float64(want) > 0.01 {
					t.Errorf("q=%v: got %d, exact %d (error %.3f%%)", q, got, want, 100*math.Abs(float64(got-want))/float64(want))
				}
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
				t.Errorf("min/max %d/%d, want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			if h.Count() != uint64(len(vals)) {
				t.Errorf("count %d", h.Count())
			}
		})
	}
}

func TestMergeEqualsCombined(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	a, b, all := New(), New(), New()
	for i := range 50_000 {
		v := int64(r.ExpFloat64() * 1e6)
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	m := New()
	m.Merge(a)
	m.Merge(b)
	m.Merge(New()) // empty: no effect on min
	if *m != *all {
		t.Fatalf("merged histogram differs from combined one")
	}
}

func TestEdgeCases(t *testing.T) {
	h := New()
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(-5)
	h.Record(100 * 1e9) // 100 s: beyond the range, still max exactly
	if h.Min() != 0 || h.Max() != 100e9 {
		t.Fatalf("min %d max %d", h.Min(), h.Max())
	}
	if got := h.Quantile(1); got != 100e9 {
		t.Fatalf("p100 = %d", got)
	}
	if got := h.Quantile(0.999); got != 100e9 {
		// the top bucket's midpoint is below the recorded value; clamped to max only if above
		if got < maxValue/2 {
			t.Fatalf("p99.9 = %d", got)
		}
	}
	h.Reset()
	if h.Count() != 0 {
		t.Fatal("reset")
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := New()
	v := int64(1)
	if n := testing.AllocsPerRun(1000, func() { v = v*3 + 7; h.Record(v % 1e10) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	h := New()
	for i := range b.N {
		h.Record(int64(i*7919) % 1e9)
	}
}
