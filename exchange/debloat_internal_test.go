package exchange

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"
)

func TestDebloatedSize(t *testing.T) {
	const minSize, maxSize = 256, 32 << 10
	for _, tc := range []struct {
		name       string
		throughput float64
		buffers    int
		target     time.Duration
		want       int
	}{
		{"1 MB/s over 100 buffers, 1 s", 1e6, 100, time.Second, 10000},
		{"no buffers in use counts as one", 1000, 0, time.Second, 1000},
		{"short target", 1e6, 100, 100 * time.Millisecond, 1000},
		{"fast consumer: segment size", 1e9, 10, time.Second, maxSize},
		{"exactly the segment size", maxSize * 4, 4, time.Second, maxSize},
		{"slow consumer: minimum", 100, 10, time.Second, minSize},
		{"idle: minimum", 0, 10, time.Second, minSize},
		{"infinite throughput: segment size", math.Inf(1), 10, time.Second, maxSize},
		{"NaN: segment size", math.NaN(), 10, time.Second, maxSize},
	} {
		if got := debloatedSize(tc.throughput, tc.buffers, tc.target, minSize, maxSize); got != tc.want {
			t.Errorf("%s: debloatedSize(%v, %d, %v) = %d, want %d", tc.name, tc.throughput, tc.buffers, tc.target, got, tc.want)
		}
	}
}

func TestAnnounceSizeHysteresis(t *testing.T) {
	const minSize, maxSize, th = 256, 32768, 0.25
	for _, tc := range []struct {
		size, last int
		want       bool
	}{
		{10000, 10000, false}, // unchanged
		{12500, 10000, false}, // +25%: not more than the threshold
		{12501, 10000, true},  // just above
		{7500, 10000, false},  // -25%
		{7499, 10000, true},
		{maxSize, 30000, true}, // a bound is always announced
		{minSize, 300, true},
		{minSize, minSize, false},
		{maxSize, maxSize, false},
		{1000, maxSize, true},
	} {
		if got := announceSize(tc.size, tc.last, minSize, maxSize, th); got != tc.want {
			t.Errorf("announceSize(%d after %d) = %v, want %v", tc.size, tc.last, got, tc.want)
		}
	}
}

func TestDebloatConfigValidate(t *testing.T) {
	ok := DebloatConfig{}.withDefaults()
	if err := ok.validate(DefaultSegmentSize); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if ok.Target != time.Second || ok.Period != 200*time.Millisecond || ok.Samples != 20 || ok.Threshold != 0.25 || ok.MinBufferSize != 256 {
		t.Fatalf("defaults = %+v, want Flink's (1s, 200ms, 20, 0.25, 256)", ok)
	}
	for _, tc := range []struct {
		field string
		cfg   DebloatConfig
	}{
		{"Debloat.Target", DebloatConfig{Target: -time.Second}},
		{"Debloat.Period", DebloatConfig{Period: -1}},
		{"Debloat.Samples", DebloatConfig{Samples: -1}},
		{"Debloat.Threshold", DebloatConfig{Threshold: -0.1}},
		{"Debloat.Threshold", DebloatConfig{Threshold: 1}},
		{"Debloat.Threshold", DebloatConfig{Threshold: math.NaN()}},
		{"Debloat.MinBufferSize", DebloatConfig{MinBufferSize: -1}},
		{"Debloat.MinBufferSize", DebloatConfig{MinBufferSize: 10}},
		{"Debloat.MinBufferSize", DebloatConfig{MinBufferSize: DefaultSegmentSize + 1}},
	} {
		err := tc.cfg.withDefaults().validate(DefaultSegmentSize)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v, want a ConfigError for %s", tc.cfg, err, tc.field)
		}
	}
}

// TestWriterCutsAtBufferSize: after its consumer announced a size, every
// buffer of the subpartition is at most that size, records larger than
// it span buffers, and the records come out intact and in order; the
// other subpartition keeps whole segments.
func TestWriterCutsAtBufferSize(t *testing.T) {
	_, p := localPartition(t, 2)
	const size = 300
	p.subs[0].setBufferSize(size)
	var want, got [2][]byte
	var largest [2]int
	drain := func() {
		for sub := range 2 {
			for {
				r := p.subs[sub].poll(true)
				if !r.ok {
					break
				}
				largest[sub] = max(largest[sub], r.buf.Len())
				got[sub] = append(got[sub], r.buf.Bytes()...)
				r.buf.Release()
			}
		}
	}
	for i := range 200 {
		rec := bytes.Repeat([]byte{byte(i)}, 20+i%7*100) // 20..620 bytes: some larger than the cut
		for sub := range 2 {
			emit(t, p, sub, string(rec))
			want[sub] = append(want[sub], framed(string(rec))...)
		}
		drain() // finished buffers only: the partition's pool is small
	}
	p.Flush()
	drain()
	for sub := range 2 {
		if !bytes.Equal(got[sub], want[sub]) {
			t.Fatalf("subpartition %d: %d bytes read, want the %d written, in order", sub, len(got[sub]), len(want[sub]))
		}
	}
	if largest[0] != size {
		t.Errorf("subpartition 0: largest buffer %d bytes, want the announced %d", largest[0], size)
	}
	if largest[1] != testSegment {
		t.Errorf("subpartition 1: largest buffer %d bytes, want whole %d-byte segments", largest[1], testSegment)
	}
}

func TestCutSizeClamped(t *testing.T) {
	var s subpartition
	for _, tc := range []struct{ announced, want int32 }{
		{0, 4096}, {1, MinDebloatedBufferSize}, {63, MinDebloatedBufferSize}, {64, 64},
		{1000, 1000}, {4095, 4095}, {4096, 4096}, {1 << 20, 4096},
	} {
		s.setBufferSize(int(tc.announced))
		if got := s.cutSize(4096); got != tc.want {
			t.Errorf("announced %d: cut at %d, want %d", tc.announced, got, tc.want)
		}
	}
}
