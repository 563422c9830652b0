package quictransport_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
)

// TestIdleConnectionClosed: a served connection whose only stream never
// sends a PartitionRequest holds no channel, and is closed with
// ConnCodeIdle after IdleConnectionTimeout (keepalives do not keep it);
// a connection that holds a channel is kept.
func TestIdleConnectionClosed(t *testing.T) {
	defer transporttest.CheckGoroutines(t)()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const idle = 300 * time.Millisecond
	cfg := testConfig(t)
	cfg.IdleConnectionTimeout = idle
	cfg.HandshakeTimeout = 200 * time.Millisecond
	cfg.KeepAlivePeriod = 50 * time.Millisecond // the attacker's connection is never silent
	prod, cons := newTestNode(t, cfg), newTestNode(t, testConfig(t))
	defer prod.Close()
	defer cons.Close()
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer transporttest.EmitUntilStopped(ctx, p, 0)()
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()

	attacker := dialRaw(ctx, t, prod.Addr(), cfg, &quic.Config{KeepAlivePeriod: 50 * time.Millisecond})
	defer attacker.CloseWithError(0, "test over")
	dialed := time.Now()
	s, err := attacker.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{0}); err != nil { // one byte of a frame header, then nothing
		t.Fatal(err)
	}
	// The healthy channel reads on meanwhile: its connection holds a
	// channel and is never closed as idle.
	for time.Since(dialed) < 3*idle {
		if _, err := g.Next(ctx); err != nil {
			t.Fatalf("healthy channel after %v: %v", time.Since(dialed), err)
		}
	}
	select {
	case <-attacker.Context().Done():
	case <-time.After(idle + 2*time.Second - time.Since(dialed)):
		t.Fatalf("connection without a channel still open %v after it was dialed", time.Since(dialed))
	}
	var ae *quic.ApplicationError
	if err := context.Cause(attacker.Context()); !errors.As(err, &ae) || ae.ErrorCode != quictransport.ConnCodeIdle || !ae.Remote {
		t.Fatalf("connection ended with %v, want the producer's ConnCodeIdle", err)
	}
}
