package transporttest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

func (s *suite) testEvents(t *testing.T) {
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	var taskEvents sync.Map
	p := newPartition(t, prodEnv, exchange.PartitionConfig{
		Subpartitions: 2, BufferTimeout: exchange.FlushFullBuffersOnly,
		OnTaskEvent: func(sub int, ev []byte) { taskEvents.Store(sub, string(ev)) },
	})
	specs := []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: 0, Addr: prodEnv.Addr()}, {Partition: p.ID(), Subpartition: 1, Addr: prodEnv.Addr()}}
	// Little credit, so that most data waits at the producer, where the
	// unaligned barrier below must overtake it.
	g := newGate(t, consEnv, exchange.GateConfig{Channels: specs, ExclusiveBuffers: 1, FloatingBuffers: 1})
	next := func() exchange.Element {
		t.Helper()
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Aligned barrier: records before it, then it, then the
	// subpartition is blocked until ResumeConsumption.
	w := exchange.NewRecordWriter(p, exchange.Forward{})
	must(t, w.Emit(ctx, []byte("r1")))
	must(t, w.BroadcastEvent(ctx, exchange.CheckpointBarrier{ID: 7, Timestamp: 1}))
	must(t, w.Emit(ctx, []byte("r2")))
	w.Flush()
	perChannel := map[int][]string{}
	for range 3 {
		e := next()
		switch ev := e.Event.(type) {
		case nil:
			perChannel[e.Channel] = append(perChannel[e.Channel], string(e.Record))
		case exchange.CheckpointBarrier:
			if ev.ID != 7 || ev.Unaligned {
				t.Fatalf("got %+v, want aligned barrier 7", ev)
			}
			perChannel[e.Channel] = append(perChannel[e.Channel], "barrier")
		default:
			t.Fatalf("unexpected event %+v", e)
		}
	}
	if fmt.Sprint(perChannel[0]) != "[r1 barrier]" || fmt.Sprint(perChannel[1]) != "[barrier]" {
		t.Fatalf("got %v, want channel 0 [r1 barrier] and channel 1 [barrier]", perChannel)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	e, err := g.Next(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after an aligned barrier, before resuming: got %+v, %v; want nothing", e, err)
	}
	must(t, g.ResumeConsumption(0))
	if e := next(); string(e.Record) != "r2" || e.Channel != 0 {
		t.Fatalf("after resume: %+v, want r2 on channel 0", e)
	}
	must(t, g.ResumeConsumption(1))

	// An unaligned barrier overtakes queued data: queue about 8 buffers
	// of records on subpartition 1 (the consumer has credit for 2 and is
	// not reading), then send it. It may reach the consumer after the
	// consumer has read what it already had, but not after the rest.
	rec := make([]byte, 1000)
	const queuedRecords = 60
	for i := range queuedRecords {
		binary.BigEndian.PutUint32(rec, uint32(i))
		must(t, p.EmitTo(ctx, 1, rec))
	}
	must(t, w.BroadcastEvent(ctx, exchange.CheckpointBarrier{ID: 8, Unaligned: true}))
	before := 0
	for {
		e := next()
		if b, ok := e.Event.(exchange.CheckpointBarrier); ok && e.Channel == 1 {
			if b.ID != 8 || !b.Unaligned {
				t.Fatalf("got %+v", b)
			}
			break
		}
		if e.Channel == 1 && e.Record != nil {
			before++
		}
	}
	if before >= queuedRecords/2 {
		t.Fatalf("unaligned barrier arrived after %d of %d queued records: it did not overtake", before, queuedRecords)
	}
	// Drain the rest in order; channel 0 also got the barrier.
	p.Flush()
	for got := before; got < queuedRecords; {
		e := next()
		if e.Channel == 1 && e.Record != nil {
			if n := int(binary.BigEndian.Uint32(e.Record)); n != got {
				t.Fatalf("record %d after the barrier, want %d", n, got)
			}
			got++
		}
	}

	// Task events travel from consumer to producer.
	must(t, g.SendTaskEvent([]byte("iteration done")))
	waitFor(t, ctx, func() bool {
		a, _ := taskEvents.Load(0)
		b, _ := taskEvents.Load(1)
		return a == "iteration done" && b == "iteration done"
	})

	// EndOfData and its acknowledgement. As in Flink, the producer
	// finishes only after the acknowledgement: finishing earlier lets one
	// channel's EndOfPartition (which releases that channel) be read
	// before another channel's EndOfData on transports that deliver
	// channels independently, and the acknowledgement could then not be
	// sent on the released channel.
	must(t, p.EndOfData(ctx))
	eod := 0
	for eod < 2 {
		e := next()
		if _, ok := e.Event.(exchange.EndOfData); ok {
			eod++
		}
	}
	select {
	case <-p.AllRecordsProcessed():
		t.Fatal("AllRecordsProcessed before the consumer acknowledged")
	default:
	}
	must(t, g.AckAllRecordsProcessed())
	select {
	case <-p.AllRecordsProcessed():
	case <-ctx.Done():
		t.Fatal("acknowledgement did not reach the producer")
	}
	must(t, p.Finish(ctx))
	g.Close()
	prodEnv.Close()
	consEnv.Close()
}
