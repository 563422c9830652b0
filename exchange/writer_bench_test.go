package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qexchange/qexchange/exchange"
)

// benchEmit measures one RecordWriter emitting records round-robin into
// subs subpartitions, drained in the same process by a gate of subs local
// channels (no copy, no network): the cost of the model's hot path. The
// gate reads with NextBatch, so that on two cores the figure is the
// writer's and not the reader's; BenchmarkPipelineNext* read with Next.
func benchEmit(b *testing.B, recordSize, subs int, metrics prometheus.Registerer) {
	benchPipeline(b, pipeline{recordSize: recordSize, subs: subs, metrics: metrics, nextBatch: true})
}

// pipeline is what benchPipeline runs: batch > 0 emits with EmitAll,
// batch records at a time; nextBatch reads with NextBatch, else Next.
type pipeline struct {
	recordSize, subs, batch int
	nextBatch               bool
	metrics                 prometheus.Registerer
}

func benchPipeline(b *testing.B, pl pipeline) {
	recordSize, subs, batch := pl.recordSize, pl.subs, pl.batch
	ctx := context.Background()
	cfg := exchange.Config{NetworkMemory: 64 << 20, Metrics: pl.metrics}
	if need := int64(2*subs+8) * exchange.DefaultSegmentSize; need > cfg.NetworkMemory {
		// The partition's default maximum of buffers, with segments of
		// the same size as at 100 subpartitions (269 MB at 4096).
		cfg.NetworkMemory = need
	}
	env, err := exchange.NewEnvironment(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, subs)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i}
	}
	g, err := env.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		b.Fatal(err)
	}
	received := make(chan int, 1)
	go func() {
		n := 0
		count := func(e exchange.Element) bool {
			if e.Event == nil {
				n++
			}
			return true
		}
		for pl.nextBatch {
			if err := g.NextBatch(ctx, count); err != nil {
				if !errors.Is(err, io.EOF) {
					b.Error(err)
				}
				received <- n
				return
			}
		}
		for {
			e, err := g.Next(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					b.Error(err)
				}
				received <- n
				return
			}
			if e.Event == nil {
				n++
			}
		}
	}()
	w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
	rec := make([]byte, recordSize)
	records := make([][]byte, batch)
	for i := range records {
		records[i] = rec
	}
	// Warm-up, untimed: a segment's worth of records per subpartition,
	// so that the figure is the steady state and not the first touch of
	// the pool's fresh pages (at 4096 subpartitions, 128 MiB of page
	// faults that a long-running node pays once).
	warm := subs * (exchange.DefaultSegmentSize / (4 + recordSize))
	for range warm {
		if err := w.Emit(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(recordSize))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		if batch == 0 {
			if err := w.Emit(ctx, rec); err != nil {
				b.Fatal(err)
			}
			i++
			continue
		}
		n, err := w.EmitAll(ctx, records[:min(batch, b.N-i)])
		if err != nil {
			b.Fatal(err)
		}
		i += n
	}
	if err := w.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	n := <-received
	b.StopTimer()
	if n != warm+b.N {
		b.Fatalf("received %d records, emitted %d", n, warm+b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkEmit8B(b *testing.B)   { benchEmit(b, 8, 100, nil) }
func BenchmarkEmit1KiB(b *testing.B) { benchEmit(b, 1024, 100, nil) }

// BenchmarkEmit8B4096 is BenchmarkEmit8B with 4096 subpartitions: the
// cost per record must not grow with them.
func BenchmarkEmit8B4096(b *testing.B) { benchEmit(b, 8, 4096, nil) }

// BenchmarkEmitAll8B and BenchmarkEmitAll8B4096 emit the same records
// with EmitAll, 64 at a time.
func BenchmarkEmitAll8B(b *testing.B) {
	benchPipeline(b, pipeline{recordSize: 8, subs: 100, batch: 64, nextBatch: true})
}
func BenchmarkEmitAll8B4096(b *testing.B) {
	benchPipeline(b, pipeline{recordSize: 8, subs: 4096, batch: 64, nextBatch: true})
}

// BenchmarkPipelineNext8B and BenchmarkPipelineNext8B4096 are
// BenchmarkEmit8B and BenchmarkEmit8B4096 read with Next, a call per
// record: on two cores the reader is then the slower side.
func BenchmarkPipelineNext8B(b *testing.B) {
	benchPipeline(b, pipeline{recordSize: 8, subs: 100})
}
func BenchmarkPipelineNext8B4096(b *testing.B) {
	benchPipeline(b, pipeline{recordSize: 8, subs: 4096})
}

// BenchmarkEmit8BMetrics is BenchmarkEmit8B with metrics on: the same
// 0 allocs per record, and the cost of per-buffer counting.
func BenchmarkEmit8BMetrics(b *testing.B) { benchEmit(b, 8, 100, prometheus.NewRegistry()) }

// TestEmitAllocatesNothing is the allocation claim as a test: emitting a
// record into open buffers allocates nothing.
func TestEmitAllocatesNothing(t *testing.T) {
	for _, metrics := range []bool{false, true} {
		t.Run(fmt.Sprintf("metrics=%v", metrics), func(t *testing.T) { testEmitAllocatesNothing(t, metrics) })
	}
}

func testEmitAllocatesNothing(t *testing.T, metrics bool) {
	ctx := context.Background()
	cfg := exchange.Config{NetworkMemory: 8 << 20}
	if metrics {
		cfg.Metrics = prometheus.NewRegistry()
	}
	env, err := exchange.NewEnvironment(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 4, BufferTimeout: exchange.FlushFullBuffersOnly, MaxBuffers: 200})
	if err != nil {
		t.Fatal(err)
	}
	w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
	rec := make([]byte, 8)
	// 100 runs x 12 bytes stays within the first segment of each
	// subpartition after warm-up, so no reader is needed.
	_ = w.Emit(ctx, rec)
	if n := testing.AllocsPerRun(100, func() {
		if err := w.Emit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Emit allocates %.1f times per record", n)
	}
	h := exchange.Hash{}
	if n := testing.AllocsPerRun(100, func() { _ = h.SelectChannel(rec, 7) }); n != 0 {
		t.Fatalf("Hash selector allocates %.1f times", n)
	}
}
