package transporttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// testCancelAndClose cancels gates mid-stream and closes nodes mid-stream;
// every buffer returns and no goroutine stays.
func (s *suite) testCancelAndClose(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 8, BufferTimeout: time.Millisecond})
	specs := everySubpartition(p, prodEnv.Addr())
	g := newGate(t, consEnv, exchange.GateConfig{Channels: specs})
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		w := exchange.NewRecordWriter(p, nil)
		rec := make([]byte, 3000)
		for {
			if err := w.Emit(wctx, rec); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	for range 2000 {
		if _, err := g.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	g.Close()
	if _, err := g.Next(ctx); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	stopWriter()
	if err := <-writerDone; !errors.Is(err, context.Canceled) && !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("writer: %v", err)
	}
	p.Release()
	if err := p.EmitTo(ctx, 0, []byte("x")); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("EmitTo after Release: %v, want ErrClosed", err)
	}
	prodEnv.Close()
	consEnv.Close()
	CheckPools(t, prodEnv, consEnv)
}

func (s *suite) testPartitionNotFound(t *testing.T) {
	ctx := testContext(t, 10*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	g := newGate(t, consEnv, exchange.GateConfig{
		Channels:       []exchange.ChannelSpec{{Partition: exchange.NewPartitionID(), Addr: prodEnv.Addr()}},
		InitialBackoff: time.Millisecond, MaxBackoff: 8 * time.Millisecond,
	})
	_, err := g.Next(ctx)
	var nf *exchange.PartitionNotFoundError
	var ce *exchange.ChannelError
	if !errors.As(err, &nf) || !errors.Is(err, exchange.ErrPartitionNotFound) || !errors.As(err, &ce) || ce.Index != 0 {
		t.Fatalf("Next: %v, want a ChannelError wrapping *PartitionNotFoundError", err)
	}
	if nf.Peer != prodEnv.Addr() || nf.Waited < 15*time.Millisecond {
		t.Fatalf("error %q: want peer %s and the retries' wait (>= 15ms)", err, prodEnv.Addr())
	}
	var end *exchange.GateFailedError
	if _, err := g.Next(ctx); errors.Is(err, io.EOF) || !errors.As(err, &end) || !errors.Is(err, exchange.ErrPartitionNotFound) {
		t.Fatalf("Next after the only channel failed: %v, want a *GateFailedError holding it, not io.EOF", err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
}

func (s *suite) testLateProducer(t *testing.T) {
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	id := exchange.PartitionIDFromName("late", 0)
	g := newGate(t, consEnv, exchange.GateConfig{
		Channels:       []exchange.ChannelSpec{{Partition: id, Addr: prodEnv.Addr()}},
		InitialBackoff: 5 * time.Millisecond, MaxBackoff: time.Second,
	})
	// The consumer is already asking; the partition appears later.
	got := make(chan error, 1)
	go func() {
		e, err := g.Next(ctx)
		if err == nil && string(e.Record) != "hello" {
			err = fmt.Errorf("got %q", e.Record)
		}
		got <- err
	}()
	p := newPartition(t, prodEnv, exchange.PartitionConfig{ID: id, Subpartitions: 1})
	if err := p.EmitTo(ctx, 0, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
}

func (s *suite) testProducerFailure(t *testing.T) {
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 2, BufferTimeout: time.Millisecond})
	p2 := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	g := newGate(t, consEnv, exchange.GateConfig{Channels: []exchange.ChannelSpec{
		{Partition: p.ID(), Subpartition: 0, Addr: prodEnv.Addr()},
		{Partition: p2.ID(), Subpartition: 0, Addr: prodEnv.Addr()},
	}})
	if err := p.EmitTo(ctx, 0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if e, err := g.Next(ctx); err != nil || string(e.Record) != "before" {
		t.Fatalf("Next: %q, %v", e.Record, err)
	}
	p.Fail(errors.New("disk on fire"))
	_, err := g.Next(ctx)
	var re *exchange.RemoteError
	if !errors.Is(err, exchange.ErrRemote) || !errors.As(err, &re) || re.Fatal || re.Peer != prodEnv.Addr() {
		t.Fatalf("Next: %v, want a non-fatal RemoteError from %s", err, prodEnv.Addr())
	}
	if !containsAll(err.Error(), "disk on fire") {
		t.Fatalf("error %q does not carry the producer's message", err)
	}
	// The other channel on the same connection still works.
	if err := p2.EmitTo(ctx, 0, []byte("after")); err != nil {
		t.Fatal(err)
	}
	p2.Flush()
	if e, err := g.Next(ctx); err != nil || string(e.Record) != "after" || e.Channel != 1 {
		t.Fatalf("Next on the healthy channel: %q (channel %d), %v", e.Record, e.Channel, err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
}

func (s *suite) testProducerNodeDies(t *testing.T) {
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 3, BufferTimeout: time.Millisecond})
	specs := everySubpartition(p, prodEnv.Addr())
	g := newGate(t, consEnv, exchange.GateConfig{Channels: specs})
	for i := range 3 {
		if err := p.EmitTo(ctx, i, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := g.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	prodEnv.Close()
	failed := map[int]bool{}
	for len(failed) < 3 {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			t.Fatalf("Next after the producer died: %+v", e)
		}
		if !errors.Is(err, exchange.ErrConnectionLost) && !errors.Is(err, exchange.ErrRemote) {
			t.Fatalf("Next: %v, want ErrConnectionLost or ErrRemote", err)
		}
		if !containsAll(err.Error(), prodEnv.Addr()) {
			t.Fatalf("error %q does not name the peer %s", err, prodEnv.Addr())
		}
		failed[e.Channel] = true
	}
	if len(failed) != 3 {
		t.Fatalf("%d of 3 channels failed", len(failed))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("channels failed %v after the producer died", d)
	}
	g.Close()
	consEnv.Close()
}

func (s *suite) testSecondConsumer(t *testing.T) {
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 1})
	spec := []exchange.ChannelSpec{{Partition: p.ID(), Addr: prodEnv.Addr()}}
	g1 := newGate(t, consEnv, exchange.GateConfig{Channels: spec})
	if err := p.EmitTo(ctx, 0, []byte("one")); err != nil {
		t.Fatal(err)
	}
	p.Flush()
	if e, err := g1.Next(ctx); err != nil || string(e.Record) != "one" {
		t.Fatalf("first consumer: %q, %v", e.Record, err)
	}
	g2 := newGate(t, consEnv, exchange.GateConfig{Channels: spec})
	if _, err := g2.Next(ctx); !errors.Is(err, exchange.ErrAlreadyConsumed) {
		t.Fatalf("second consumer: %v, want ErrAlreadyConsumed", err)
	}
	g1.Close()
	g2.Close()
	prodEnv.Close()
	consEnv.Close()
}

// testProducerReleases: a partition released by its producer while a
// consumer reads it fails that consumer's channel instead of leaving it
// waiting forever.
func (s *suite) testProducerReleases(t *testing.T) {
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 1})
	g := newGate(t, consEnv, exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prodEnv.Addr()}}})
	must(t, p.EmitTo(ctx, 0, []byte("first")))
	p.Flush()
	if e, err := g.Next(ctx); err != nil || string(e.Record) != "first" {
		t.Fatalf("Next: %q, %v", e.Record, err)
	}
	p.Release()
	if _, err := g.Next(ctx); !errors.Is(err, exchange.ErrRemote) {
		t.Fatalf("Next after the producer released the partition: %v, want ErrRemote", err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
}
