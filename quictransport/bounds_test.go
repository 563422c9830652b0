package quictransport_test

import (
	"context"
	"crypto/tls"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
)

// TestStalledHandshakes: a peer that opens many streams and never sends
// its Hello holds at most MaxHandshakingStreams of the producer's
// goroutines, and a healthy consumer of the same node keeps reading.
func TestStalledHandshakes(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const seg = 8 << 10
	cfg := testConfig(t)
	cfg.MaxHandshakingStreams = 4
	newNode := func(c quictransport.Config) *exchange.Environment {
		e, err := exchange.NewEnvironment(context.Background(), exchange.Config{NetworkMemory: 4 << 20, SegmentSize: seg, Transport: quictransport.New(c)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	prod, cons := newNode(cfg), newNode(testConfig(t))
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	written := make(chan struct{})
	go func() {
		defer close(written)
		rec := make([]byte, 64)
		for p.EmitTo(wctx, 0, rec) == nil {
		}
	}()
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	read := func(n int) {
		for range n {
			if _, err := g.Next(ctx); err != nil {
				t.Fatalf("healthy channel: %v", err)
			}
		}
	}
	read(100)

	before := runtime.NumGoroutine()
	attacker, err := quic.DialAddr(ctx, prod.Addr(), &tls.Config{Certificates: []tls.Certificate{*cfg.Certificate},
		InsecureSkipVerify: true, NextProtos: []string{quictransport.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const streams = 100
	for range streams {
		s, err := attacker.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte{0}); err != nil { // one byte of a frame header, then nothing
			t.Fatal(err)
		}
	}
	read(1000) // the producer accepted what it would meanwhile
	if grew := runtime.NumGoroutine() - before; grew > 4*cfg.MaxHandshakingStreams+10 {
		t.Errorf("%d stalled streams made %d goroutines; want them bounded by MaxHandshakingStreams %d", streams, grew, cfg.MaxHandshakingStreams)
	}
	read(1000)
	attacker.CloseWithError(0, "test over")
	stop()
	<-written
	g.Close()
	p.Release()
	prod.Close()
	cons.Close()
	checkG()
}
