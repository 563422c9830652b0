package cli

import (
	"strings"
	"testing"

	"github.com/qexchange/qexchange/exchange/transporttest"
)

func TestBarrierUsageErrors(t *testing.T) {
	checkUsageErrors(t, []usageCase{
		{[]string{"bench", "-barrier", "sideways", "-record-rate", "1000"}, `-barrier: unknown mode "sideways"`},
		{[]string{"bench", "-barrier", "aligned"}, "needs a paced producer"},
		{[]string{"bench", "-barrier", "aligned", "-record-rate", "1000", "-consumer-rate", "1.5"}, "-consumer-rate must be a fraction"},
		{[]string{"bench", "-barrier", "aligned", "-record-rate", "1000", "-consumer-rate", "-0.1"}, "-consumer-rate must be a fraction"},
		{[]string{"bench", "-barrier", "unaligned", "-record-rate", "1000", "-barrier-interval", "-1s"}, "-barrier-interval must be positive"},
		{[]string{"bench", "-barrier", "aligned", "-record-rate", "1000", "-duration", "2s", "-barrier-warmup", "2s"}, "-barrier-warmup must be"},
		{[]string{"bench", "-barrier", "aligned", "-record-rate", "1000", "-transport", "tcp,raw-tcp"}, "runs the exchange only"},
		{[]string{"bench", "-barrier", "aligned", "-record-rate", "1000", "-transport", "tcp", "-selector", "broadcast"}, "unicast -selector"},
		{[]string{"bench", "-consumer-rate", "0.1"}, "-consumer-rate needs -barrier"},
		{[]string{"bench", "-barrier", "aligned", "-record-rate", "1000", "-transport", "tcp", "-partition-type", "blocking"}, "needs pipelined partitions"},
		{[]string{"bench", "-debloat", "-debloat-target", "0s"}, "-debloat-target must be positive"},
	})
}

func TestBarrierPreset(t *testing.T) {
	o := mustParse(t, "bench", "-preset", "barrier", "-transport", "tcp")
	b := o.barrier
	if b.mode != barrierAligned || b.consumerRate != 0.1 || o.recordRate != 5000 || o.writers != 1 || o.readers != 1 {
		t.Fatalf("preset barrier: %+v, rate %v, %dx%d", b, o.recordRate, o.writers, o.readers)
	}
	if len(o.transports.items) != 1 || o.transports.items[0] != tTCP {
		t.Fatalf("-transport given explicitly must win over the preset: %v", o.transports.items)
	}
	if cfg := o.barrier.debloatConfig(); cfg.Enabled {
		t.Fatalf("debloating must be off unless -debloat: %+v", cfg)
	}
	if cfg := mustParse(t, "bench", "-debloat", "-debloat-target", "300ms").barrier.debloatConfig(); !cfg.Enabled || cfg.Target.Milliseconds() != 300 {
		t.Fatalf("-debloat -debloat-target 300ms: %+v", cfg)
	}
}

// TestBarrierScenario runs both barrier modes on the in-memory and tcp
// transports with debloating, a consumer at half the offered rate, and
// checks the barrier table and JSON: barriers arrive, in-flight bytes and
// throughput are measured, every record arrives in order.
func TestBarrierScenario(t *testing.T) {
	defer transporttest.CheckGoroutines(t)()
	for _, mode := range []string{barrierAligned, barrierUnaligned} {
		rep, table := runBenchCmd(t, "-transport", "mem,tcp", "-barrier", mode, "-debloat", "-writers", "2", "-readers", "2",
			"-record-rate", "4000", "-consumer-rate", "0.5", "-barrier-interval", "100ms", "-duration", "1500ms", "-barrier-warmup", "500ms",
			"-repeat", "1", "-calibrate", "0")
		if !strings.Contains(table, "barrier latency") || !strings.Contains(table, mode) {
			t.Fatalf("%s: no barrier table:\n%s", mode, table)
		}
		if len(rep.Results) != 2 {
			t.Fatalf("%s: %d results, want mem and tcp", mode, len(rep.Results))
		}
		for _, r := range rep.Results {
			b := r.Barrier
			if r.Error != "" || r.Lost != 0 || r.Reordered != 0 || b == nil {
				t.Fatalf("%s %s: %+v", mode, r.Transport, r)
			}
			if b.Mode != mode || !b.Debloat || b.Arrived == 0 || b.Latency.P50 <= 0 || b.Latency.Max < b.Latency.P99 || b.Latency.P99 < b.Latency.P50 {
				t.Errorf("%s %s: barriers %+v", mode, r.Transport, b)
			}
			// 4 channels at 2,000 records/s offered each, consumers at half.
			if b.RecordsPerSec <= 0 || b.RecordsPerSec > 4000*1.2 || b.InFlightMaxBytes < b.InFlightMeanBytes || b.InFlightMeanBytes <= 0 || b.BufferSize <= 0 {
				t.Errorf("%s %s: throughput/in-flight %+v", mode, r.Transport, b)
			}
			if r.Sent < r.Records || r.Records == 0 {
				t.Errorf("%s %s: sent %d, taken %d", mode, r.Transport, r.Sent, r.Records)
			}
		}
	}
}
