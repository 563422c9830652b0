package ideal

import (
	"sort"
	"testing"
	"time"

	"github.com/qexchange/qexchange/bench/linkemu"
)

func percentile(xs []time.Duration, q float64) time.Duration {
	sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
	return xs[int(q*float64(len(xs)-1))]
}

func TestNoLossIsDelayPlusFlushWait(t *testing.T) {
	var xs []time.Duration
	Latencies(Params{
		Link:     linkemu.Direction{Delay: 10 * time.Millisecond, RateBitsPerSec: 100e6},
		RTT:      20 * time.Millisecond,
		Channels: 4, RecordSize: 100, RecordsPerSecond: 4000,
		BufferTimeout: 10 * time.Millisecond, Duration: 2 * time.Second,
	}, func(d time.Duration) { xs = append(xs, d) })
	if len(xs) < 7000 {
		t.Fatalf("%d records simulated, want about 8000", len(xs))
	}
	lo, hi := percentile(xs, 0), percentile(xs, 1)
	if lo < 10*time.Millisecond || hi > 21*time.Millisecond {
		t.Fatalf("latency range [%v, %v], want within delay + [0, timeout + serialisation]", lo, hi)
	}
}

func TestLossAddsRoundTripsToLostBuffersOnly(t *testing.T) {
	run := func(loss float64) []time.Duration {
		var xs []time.Duration
		Latencies(Params{
			Link: linkemu.Direction{Loss: loss, Delay: 10 * time.Millisecond, RateBitsPerSec: 100e6},
			RTT:  20 * time.Millisecond, Seed: 1,
			Channels: 8, RecordSize: 1000, RecordsPerSecond: 8000,
			Duration: 5 * time.Second,
		}, func(d time.Duration) { xs = append(xs, d) })
		return xs
	}
	clean, lossy := run(0), run(0.02)
	if percentile(clean, 0.999) >= 11*time.Millisecond {
		t.Fatalf("clean p99.9 %v", percentile(clean, 0.999))
	}
	if p50 := percentile(lossy, 0.5); p50 >= 11*time.Millisecond {
		t.Fatalf("2%% loss moved the median to %v", p50)
	}
	if p99 := percentile(lossy, 0.99); p99 < 30*time.Millisecond {
		t.Fatalf("2%% loss p99 %v, want one RTT over the delay", p99)
	}
}
