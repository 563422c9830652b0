package transporttest

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// testStalledConsumer: two partitions on one node, read by two gates on
// another node over the same connection. Gate 1 never reads. Gate 2 must
// still receive many times the memory of every buffer involved, and gate
// 1's producer must be held back by credit, not by the connection.
func (s *suite) testStalledConsumer(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	const memory = 4 << 20
	prodEnv, consEnv := s.env(t, memory), s.env(t, memory)
	p1 := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	p2 := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	g1 := newGate(t, consEnv, exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p1.ID(), Addr: prodEnv.Addr()}}})
	g2 := newGate(t, consEnv, exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p2.ID(), Addr: prodEnv.Addr()}}})
	// 16x the memory of both nodes: impossible unless g2 flows while g1
	// is stalled.
	const recSize = 1000
	const flowing = 16 * 2 * memory / recSize
	var emitted1 atomic.Int64
	stall1 := make(chan struct{})
	writerDone := make(chan error, 2)
	go func() {
		w := exchange.NewRecordWriter(p1, nil)
		buf := make([]byte, recSize+recordOverhead)
		rng := rand.New(rand.NewPCG(1, 1))
		var seq uint64
		for {
			select {
			case <-stall1:
				writerDone <- w.Finish(ctx)
				return
			default:
			}
			if err := w.Emit(ctx, makeRecord(buf, 0, 0, seq, recSize, rng)); err != nil {
				writerDone <- err
				return
			}
			seq++
			emitted1.Add(1)
		}
	}()
	go func() {
		w := exchange.NewRecordWriter(p2, nil)
		buf := make([]byte, recSize)
		rng := rand.New(rand.NewPCG(2, 2))
		for i := range uint64(flowing) {
			if err := w.Emit(ctx, makeRecord(buf, 0, 0, i, recSize, rng)); err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- w.Finish(ctx)
	}()
	v2 := newVerifier(g2Specs(p2), []int{0})
	if _, err := v2.drain(ctx, g2); err != nil {
		t.Fatalf("flowing gate: %v", err)
	}
	if v2.records != flowing {
		t.Fatalf("flowing gate got %d records, want %d", v2.records, flowing)
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	// Writer 1 is blocked by backpressure: it wrote far less than the
	// flowing one, at most what the buffers along its path can hold.
	stalledBytes := emitted1.Load() * recSize
	if limit := int64(memory + memory); stalledBytes > limit {
		t.Fatalf("stalled channel's producer wrote %d bytes, more than both nodes' memory (%d): credit does not hold it back", stalledBytes, limit)
	}
	// Memory on the consumer stays within the gates' pools: at most
	// exclusive + floating buffers per gate.
	if out, limit := consEnv.BufferPool().Outstanding(), 2*(exchange.DefaultExclusiveBuffers+exchange.DefaultFloatingBuffers); out > limit {
		t.Fatalf("consumer holds %d buffers, gates allow %d", out, limit)
	}
	// Let gate 1 go: its data arrives complete and in order.
	close(stall1)
	v1 := newVerifier(g2Specs(p1), []int{0})
	drainErr := make(chan error, 1)
	go func() { _, err := v1.drain(ctx, g1); drainErr <- err }()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if err := <-drainErr; err != nil {
		t.Fatalf("stalled gate: %v", err)
	}
	if int64(v1.records) != emitted1.Load() {
		t.Fatalf("stalled gate got %d records, producer wrote %d", v1.records, emitted1.Load())
	}
	g1.Close()
	g2.Close()
	prodEnv.Close()
	consEnv.Close()
}

func g2Specs(p *exchange.ResultPartition) []exchange.ChannelSpec {
	return []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: 0}}
}
