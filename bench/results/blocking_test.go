package results

import (
	"bytes"
	"strings"
	"testing"
)

func blockingRun(transport string, produce, consume, ratio float64, spilled, rss int64) Result {
	return Result{
		Transport: transport, Records: 1000, Seconds: 1, RecordsPerMs: 1,
		Blocking:    &Blocking{ProduceSeconds: 0.5, ConsumeSeconds: 0.5, ProduceRecordsPerMs: produce, ConsumeRecordsPerMs: consume, SpilledBytes: spilled, DiskRatio: ratio},
		Compression: &Compression{Codec: "lz4", Buffers: 10, Compressed: 8, BytesIn: 400, BytesOut: 100, Ratio: 4},
		PeakRSS:     &PeakRSS{Bytes: rss, NetworkMemory: 128 << 20, Reset: true},
	}
}

// TestAggregateFoldsBlocking: over rounds, seconds and bytes add up,
// rates and ratios are medians, the peak RSS is the largest.
func TestAggregateFoldsBlocking(t *testing.T) {
	runs := [][]Result{
		{blockingRun("tcp", 10, 20, 2, 1<<20, 50<<20)},
		{blockingRun("tcp", 30, 40, 4, 1<<20, 70<<20)},
		{blockingRun("tcp", 20, 60, 3, 1<<20, 60<<20)},
	}
	runs[2][0].PeakRSS.Reset = false
	a := Aggregate(runs, func(i int) string { return "" })[0]
	b := a.Blocking
	if b == nil || b.ProduceSeconds != 1.5 || b.ConsumeSeconds != 1.5 || b.SpilledBytes != 3<<20 ||
		b.ProduceRecordsPerMs != 20 || b.ConsumeRecordsPerMs != 40 || b.DiskRatio != 3 {
		t.Errorf("blocking %+v", b)
	}
	if c := a.Compression; c == nil || c.Buffers != 30 || c.Compressed != 24 || c.BytesIn != 1200 || c.BytesOut != 300 || c.Ratio != 4 {
		t.Errorf("compression %+v", c)
	}
	if p := a.PeakRSS; p == nil || p.Bytes != 70<<20 || p.NetworkMemory != 128<<20 || p.Reset {
		t.Errorf("peak RSS %+v", p)
	}
	// A failed run counts for none of them.
	runs[1][0].Error = "boom"
	if a := Aggregate(runs, func(i int) string { return "" })[0]; a.Blocking.SpilledBytes != 2<<20 || a.PeakRSS.Bytes != 60<<20 {
		t.Errorf("with a failed round: %+v %+v", a.Blocking, a.PeakRSS)
	}
}

func TestWriteExtras(t *testing.T) {
	rep := &Report{Config: Config{Compression: "lz4"}, Results: []Result{
		blockingRun("tcp", 10, 20, 2.5, 3<<20, 50<<20),
		{Transport: "raw-tcp", PeakRSS: &PeakRSS{Bytes: 20 << 20, Reset: true}},
	}}
	var b bytes.Buffer
	if err := rep.writeExtras(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, w := range []string{"blocking partitions (compression lz4)", "produce rec/ms", "10.0", "20.0", "3.0", "2.50", "compression lz4, data buffers in/out (the codec's counts): tcp 4.00\n", "peak RSS MiB: tcp 50, raw-tcp 20; network memory of the two nodes 128 MiB"} {
		if !strings.Contains(out, w) {
			t.Errorf("lacks %q:\n%s", w, out)
		}
	}
	// Pipelined runs without peak RSS: nothing below the table.
	rep = &Report{Results: []Result{{Transport: "tcp"}}}
	b.Reset()
	if err := rep.writeExtras(&b); err != nil || b.Len() != 0 {
		t.Errorf("%v %q", err, b.String())
	}
}
