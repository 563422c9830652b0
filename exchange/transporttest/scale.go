package transporttest

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

func (s *suite) testManyChannels(t *testing.T) {
	ctx := testContext(t, 120*time.Second)
	n := s.o.ScaleChannels
	mem := int64(n*(exchange.DefaultExclusiveBuffers)+64) * segmentSize
	prodEnv, consEnv := s.env(t, max(mem, 8<<20)), s.env(t, max(mem, 8<<20))
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: n, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, n)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prodEnv.Addr()}
	}
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	const perChannel = 20
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
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != nil {
			continue
		}
		if k := int(binary.BigEndian.Uint32(e.Record)); k != next[e.Channel] {
			t.Fatalf("channel %d: record %d, want %d", e.Channel, k, next[e.Channel])
		}
		next[e.Channel]++
	}
	for i, c := range next {
		if c != perChannel {
			t.Fatalf("channel %d got %d records, want %d", i, c, perChannel)
		}
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
}
