package transporttest

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

func (s *suite) testManyChannels(t *testing.T) {
	ctx := testContext(t, 120*time.Second)
	n := s.o.ScaleChannels
	mem := int64(n*(exchange.DefaultExclusiveBuffers)+64) * segmentSize
	prodEnv, consEnv := s.env(t, max(mem, 8<<20)), s.env(t, max(mem, 8<<20))
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: n, BufferTimeout: time.Millisecond})
	g := newGate(t, consEnv, exchange.GateConfig{Channels: everySubpartition(p, prodEnv.Addr())})
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
	readNumbered(t, ctx, g, perChannel)
	g.Close()
	prodEnv.Close()
	consEnv.Close()
}
