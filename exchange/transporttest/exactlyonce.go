package transporttest

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// runTopology: w partitions of r+1 subpartitions on a producer node; r
// gates of w channels each on a consumer node read subpartitions 0..r-1
// remotely, and one gate on the producer node reads subpartition r
// locally, so local channels pass the same checks. With via, the remote
// channels dial via(producer address) instead of the producer.
func (s *suite) runTopology(t *testing.T, w, r int, gateCfg exchange.GateConfig, partCfg exchange.PartitionConfig, records int, via func(string) string) {
	ctx := testContext(t, 90*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	remote := prodEnv.Addr()
	if via != nil {
		remote = via(remote)
	}
	parts := make([]*exchange.ResultPartition, w)
	for i := range parts {
		pc := partCfg
		pc.Subpartitions = r + 1 // the last one is read locally
		p := newPartition(t, prodEnv, pc)
		parts[i] = p
	}
	type gateRun struct {
		g *exchange.InputGate
		v *verifier
	}
	var gates []gateRun
	for j := 0; j <= r; j++ {
		env, addr := consEnv, remote
		if j == r {
			env, addr = prodEnv, ""
		}
		specs := make([]exchange.ChannelSpec, w)
		producers := make([]int, w)
		for i := range specs {
			specs[i] = exchange.ChannelSpec{Partition: parts[i].ID(), Subpartition: j, Addr: addr}
			producers[i] = i
		}
		gc := gateCfg
		gc.Channels = specs
		g := newGate(t, env, gc)
		gates = append(gates, gateRun{g, newVerifier(specs, producers)})
	}
	var wg sync.WaitGroup
	sent := make([][]uint64, w)
	errs := make(chan error, w+len(gates))
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			sent[i], err = produce(ctx, p, i, records/w, 42)
			if err != nil {
				errs <- err
			}
		}()
	}
	for _, gr := range gates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eops, err := gr.v.drain(ctx, gr.g)
			if err == nil && eops != w {
				err = fmt.Errorf("got %d EndOfPartition events, want %d", eops, w)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for j, gr := range gates {
		for i := range parts {
			if gr.v.next[i] != sent[i][j] {
				t.Fatalf("gate %d channel %d: received %d records, producer sent %d", j, i, gr.v.next[i], sent[i][j])
			}
		}
		total += gr.v.records
		gr.g.Close()
	}
	if total != records/w*w {
		t.Fatalf("received %d records, want %d", total, records/w*w)
	}
	for _, p := range parts {
		p.Release()
	}
	prodEnv.Close()
	consEnv.Close()
	CheckPools(t, prodEnv, consEnv)
}

func (s *suite) testExactlyOnce(t *testing.T) {
	s.runTopology(t, 3, 4, exchange.GateConfig{}, exchange.PartitionConfig{BufferTimeout: time.Millisecond}, s.o.Records, nil)
}

func (s *suite) testExactlyOnceNoExclusive(t *testing.T) {
	s.runTopology(t, 2, 3, exchange.GateConfig{ExclusiveBuffers: exchange.NoExclusiveBuffers, FloatingBuffers: 4},
		exchange.PartitionConfig{BufferTimeout: time.Millisecond}, s.o.Records/4, nil)
}

func (s *suite) testFlushEveryRecord(t *testing.T) {
	s.runTopology(t, 2, 2, exchange.GateConfig{}, exchange.PartitionConfig{BufferTimeout: exchange.FlushEveryRecord}, 5_000, nil)
}

func (s *suite) testBroadcast(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	const subs, n = 5, 3000
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: exchange.FlushFullBuffersOnly})
	g := newGate(t, consEnv, exchange.GateConfig{Channels: everySubpartition(p, prodEnv.Addr())})
	go func() {
		w := exchange.NewRecordWriter(p, exchange.Broadcast{})
		rec := make([]byte, 8)
		for i := range n {
			binary.BigEndian.PutUint32(rec, uint32(i))
			if err := w.Emit(ctx, rec); err != nil {
				t.Error(err)
				return
			}
		}
		w.Finish(ctx)
	}()
	readNumbered(t, ctx, g, n)
	g.Close()
	p.Release()
	prodEnv.Close()
	consEnv.Close()
}
