package exchange_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

// TestDebloatShrinksBuffersOfSlowConsumer: a consumer that takes 10 µs
// per record under an unpaced producer gets the gate to announce a size
// well below the segment size, and from then on the buffers it receives
// (one NextBatch each) are no larger than the size announced.
func TestDebloatShrinksBuffersOfSlowConsumer(t *testing.T) {
	checkLeaks := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := memtransport.NewNetwork()
	prod := localEnv(t, exchange.Config{Transport: n.Factory()})
	reg := prometheus.NewRegistry()
	cons := localEnv(t, exchange.Config{Transport: n.Factory(), Metrics: reg})
	part, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer part.Release()
	g, err := cons.CreateInputGate(exchange.GateConfig{
		Channels: []exchange.ChannelSpec{{Partition: part.ID(), Addr: prod.Addr()}},
		Debloat:  exchange.DebloatConfig{Enabled: true, Target: 20 * time.Millisecond, Period: 10 * time.Millisecond, Samples: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	prodCtx, stopProd := context.WithCancel(ctx)
	prodDone := make(chan error, 1)
	go func() {
		w := exchange.NewRecordWriter(part, exchange.Forward{})
		rec := make([]byte, 60) // 64 bytes framed
		for {
			if err := w.Emit(prodCtx, rec); err != nil {
				prodDone <- err
				return
			}
		}
	}()

	const framed = 64
	seg := exchange.DefaultSegmentSize
	small := 0 // consecutive buffers within the announced size
	for small < 50 {
		records := 0
		if err := g.NextBatch(ctx, func(el exchange.Element) bool {
			if el.Record != nil {
				records++
			}
			return true
		}); err != nil {
			t.Fatalf("NextBatch: %v (announced %d B)", err, g.BufferSize())
		}
		time.Sleep(time.Duration(records) * 10 * time.Microsecond) // the slow consumer: ~6 MB/s
		size := g.BufferSize()
		// A record may straddle the buffer's start: one more than fits.
		if size < seg/2 && records <= size/framed+1 {
			small++
		} else {
			small = 0
		}
	}
	if size := g.BufferSize(); size < exchange.DefaultMinBufferSize || size >= seg/2 {
		t.Fatalf("announced %d B, want within [%d, %d)", size, exchange.DefaultMinBufferSize, seg/2)
	}
	gauges := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			gauges[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	if v := gauges["qexchange_debloated_buffer_size"]; v < exchange.DefaultMinBufferSize || v >= float64(seg/2) {
		t.Errorf("debloated_buffer_size gauge %v, want the debloated size", v)
	}
	if v, ok := gauges["qexchange_estimated_time_to_consume_buffers_ms"]; !ok || v < 0 {
		t.Errorf("estimated_time_to_consume_buffers_ms gauge %v (present %v)", v, ok)
	}
	stopProd()
	if err := <-prodDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("producer: %v", err)
	}
	g.Close()
	part.Release()
	prod.Close()
	cons.Close()
	checkLeaks()
}

func TestDebloatConfigRejected(t *testing.T) {
	n := memtransport.NewNetwork()
	cons := localEnv(t, exchange.Config{Transport: n.Factory()})
	_, err := cons.CreateInputGate(exchange.GateConfig{
		Channels: []exchange.ChannelSpec{{Partition: exchange.NewPartitionID(), Addr: "nowhere"}},
		Debloat:  exchange.DebloatConfig{Enabled: true, Target: -time.Second},
	})
	var ce *exchange.ConfigError
	if !errors.As(err, &ce) || ce.Field != "Debloat.Target" {
		t.Fatalf("CreateInputGate with a negative target: %v, want a ConfigError naming Debloat.Target", err)
	}
}
