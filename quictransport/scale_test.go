package quictransport_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

func newEnv(t testing.TB, memory int64, segment int) *exchange.Environment {
	t.Helper()
	return transporttest.NewEnv(t, context.Background(), exchange.Config{NetworkMemory: memory, SegmentSize: segment, Transport: testFactory(t)})
}

// TestManyChannels4096 opens 4096 channels (streams) on one connection
// and moves records on all of them, timing the phases.
func TestManyChannels4096(t *testing.T) {
	const n = 4096
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const seg = 4 << 10
	mem := int64(n*exchange.DefaultExclusiveBuffers+64) * seg
	prod, cons := newEnv(t, mem, seg), newEnv(t, mem, seg)
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: n, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, n)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prod.Addr()}
	}
	start := time.Now()
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	const perChannel = 10
	go func() {
		rec := make([]byte, 100)
		for k := range perChannel {
			for i := range n {
				binary.BigEndian.PutUint32(rec, uint32(k))
				if err := p.EmitTo(ctx, i, rec); err != nil {
					t.Error(err)
					return
				}
			}
		}
		p.Finish(ctx)
	}()
	next := make([]int, n)
	first := time.Duration(0)
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			first = time.Since(start)
		}
		if e.Event != nil {
			continue
		}
		if k := int(binary.BigEndian.Uint32(e.Record)); k != next[e.Channel] {
			t.Fatalf("channel %d: record %d, want %d", e.Channel, k, next[e.Channel])
		}
		next[e.Channel]++
	}
	done := time.Since(start)
	for i, c := range next {
		if c != perChannel {
			t.Fatalf("channel %d got %d records, want %d", i, c, perChannel)
		}
	}
	g.Close()
	closed := time.Since(start)
	p.Release()
	prod.Close()
	cons.Close()
	envClosed := time.Since(start)
	checkG()
	t.Logf("%d channels: first record after %v, all after %v, gate closed after %v, nodes closed after %v, goroutines gone after %v",
		n, first, done, closed, envClosed, time.Since(start))
}
