package quictransport_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
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
	cfg := testConfig(t)
	cfg.MaxHandshakingStreams = 4
	newNode := func(c quictransport.Config) *exchange.Environment {
		e := newTestNode(t, c)
		t.Cleanup(func() { e.Close() })
		return e
	}
	prod, cons := newNode(cfg), newNode(testConfig(t))
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := transporttest.EmitUntilStopped(ctx, p, 0)
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
	attacker := dialRaw(ctx, t, prod.Addr(), cfg, nil)
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
	g.Close()
	p.Release()
	prod.Close()
	cons.Close()
	checkG()
}

// TestRefusedHandshakeLogged: the producer logs a refused TLS handshake
// with the peer's address and the reason; the consumer fails at once
// with an *exchange.AuthError.
func TestRefusedHandshakeLogged(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	var log lockedBuf
	prodCfg := testConfig(t)
	other, _, err := tlsconf.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	consCfg := quictransport.Config{TLS: tlsconf.Options{Certificate: &other, PinnedSHA256: prodCfg.TLS.PinnedSHA256}} // trusts the producer, is not trusted
	node := func(c quictransport.Config, lg zerolog.Logger) *exchange.Environment {
		e, err := exchange.NewEnvironment(context.Background(), exchange.Config{NetworkMemory: 4 << 20, SegmentSize: 8 << 10, Transport: quictransport.New(c), Logger: lg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	prod, cons := node(prodCfg, zerolog.New(&log)), node(consCfg, zerolog.Nop())
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = g.Next(ctx)
	took := time.Since(start)
	if !errors.Is(err, exchange.ErrAuthentication) || took > time.Second {
		t.Fatalf("after %v: %v; want ErrAuthentication within 1s", took, err)
	}
	if l := log.String(); !strings.Contains(l, "TLS handshake refused") || !strings.Contains(l, cons.Addr()) || !strings.Contains(l, "not pinned") {
		t.Fatalf("the producer did not log the refusal naming %s:\n%s", cons.Addr(), l)
	}
	g.Close()
	p.Release()
	prod.Close()
	cons.Close()
	checkG()
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
