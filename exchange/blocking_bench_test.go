package exchange_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/qexchange/qexchange/exchange"
)

// BenchmarkBlockingPartition follows Flink's BlockingPartitionBenchmark:
// 8-byte records, 4 subpartitions, written to disk, then read by four
// local consumers at once. It reports records/ms end to end, the bytes
// on disk and the compression ratio (1M records per run; the issue's
// preset of 15M with parallelism 4 belongs to the CLI).
func BenchmarkBlockingPartition(b *testing.B) {
	for _, c := range []struct {
		name string
		comp exchange.Compression
	}{{"lz4", exchange.CompressionLZ4}, {"none", exchange.CompressionNone}} {
		b.Run(c.name, func(b *testing.B) {
			const records, subs = 1_000_000, 4
			ctx := context.Background()
			env, err := exchange.NewEnvironment(ctx, exchange.Config{SpillDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer env.Close()
			var spilled int64
			var ratio float64
			b.ResetTimer()
			for range b.N {
				p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, Type: exchange.Blocking, Compression: c.comp})
				if err != nil {
					b.Fatal(err)
				}
				specs := make([]exchange.ChannelSpec, subs)
				for i := range specs {
					specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i}
				}
				w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
				var rec [8]byte
				for i := range records {
					binary.BigEndian.PutUint64(rec[:], uint64(i))
					if err := w.Emit(ctx, rec[:]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Finish(ctx); err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				counts := make([]int, subs)
				for i := range specs {
					g, err := env.CreateInputGate(exchange.GateConfig{Channels: specs[i : i+1]})
					if err != nil {
						b.Fatal(err)
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer g.Close()
						for {
							e, err := g.Next(ctx)
							if errors.Is(err, io.EOF) || err != nil {
								return
							}
							if e.Event == nil {
								counts[i]++
							}
						}
					}()
				}
				wg.Wait()
				total := 0
				for _, n := range counts {
					total += n
				}
				if total != records {
					b.Fatalf("read %d records, want %d", total, records)
				}
				spilled, ratio = p.SpilledBytes(), p.CompressionStats().Ratio()
				p.Release()
			}
			b.ReportMetric(float64(records*b.N)/float64(b.Elapsed().Milliseconds()+1), "records/ms")
			b.ReportMetric(float64(spilled), "disk-bytes")
			b.ReportMetric(ratio, "ratio")
		})
	}
}
