package transporttest

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// proxy starts Options.Proxy in front of target and closes it when the
// test ends (after the environments, whose cleanups run first).
func (s *suite) proxy(t *testing.T, target string) Proxy {
	t.Helper()
	p := s.o.Proxy(t, target)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing the proxy: %v", err)
		}
	})
	return p
}

// testExactlyOnceThroughProxy: every record arrives once and in order
// when every remote channel goes through the proxy, with whatever loss
// the proxy injects (QUIC: random datagram loss).
func (s *suite) testExactlyOnceThroughProxy(t *testing.T) {
	var p Proxy
	s.runTopology(t, 2, 3, exchange.GateConfig{}, exchange.PartitionConfig{BufferTimeout: time.Millisecond}, s.o.Records/5,
		func(target string) string {
			p = s.proxy(t, target)
			return p.Addr()
		})
}

// testCutFailsEveryChannel: channels of two partitions share one path
// through the proxy; when the proxy cuts it, every one of them fails
// within CutDetection with an error that wraps ErrConnectionLost and names
// the address the channel dialed, and nothing leaks (checked after the
// subtest).
func (s *suite) testCutFailsEveryChannel(t *testing.T) {
	ctx := testContext(t, 30*time.Second+s.o.CutDetection)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p := s.proxy(t, prodEnv.Addr())
	p1 := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 3, BufferTimeout: time.Millisecond})
	p2 := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	specs := []exchange.ChannelSpec{
		{Partition: p1.ID(), Subpartition: 0, Addr: p.Addr()},
		{Partition: p1.ID(), Subpartition: 1, Addr: p.Addr()},
		{Partition: p1.ID(), Subpartition: 2, Addr: p.Addr()},
		{Partition: p2.ID(), Subpartition: 0, Addr: p.Addr()},
	}
	g := newGate(t, consEnv, exchange.GateConfig{Channels: specs})
	// One record per channel first: every channel is established on the
	// path that will be cut.
	for i := range 3 {
		must(t, p1.EmitTo(ctx, i, []byte("before")))
	}
	must(t, p2.EmitTo(ctx, 0, []byte("before")))
	for range len(specs) {
		if e, err := g.Next(ctx); err != nil || string(e.Record) != "before" {
			t.Fatalf("Next before the cut: %q, %v", e.Record, err)
		}
	}
	start := time.Now()
	p.Cut()
	failed := map[int]bool{}
	for len(failed) < len(specs) {
		e, err := g.Next(ctx)
		if err == nil {
			t.Fatalf("Next after the cut: %+v, want every channel to fail", e)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next after the cut: %v; failed so far: %v of %d channels", err, failed, len(specs))
		}
		var ce *exchange.ChannelError
		if !errors.As(err, &ce) {
			// A gate may end with every channel's failure joined.
			t.Fatalf("Next after the cut: %v, want a *ChannelError", err)
		}
		if !errors.Is(err, exchange.ErrConnectionLost) || !strings.Contains(err.Error(), p.Addr()) {
			t.Fatalf("channel %d failed with %v; want ErrConnectionLost naming %s", ce.Index, err, p.Addr())
		}
		if failed[ce.Index] {
			t.Fatalf("channel %d failed twice", ce.Index)
		}
		failed[ce.Index] = true
	}
	if d := time.Since(start); d > s.o.CutDetection {
		t.Fatalf("every channel failed %v after the cut, bound %v", d.Round(time.Millisecond), s.o.CutDetection)
	}
	g.Close()
	p1.Release()
	p2.Release()
}
