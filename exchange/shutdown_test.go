package exchange_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// shutdownTransports are the transports the shutdown tests run on: one
// factory per node. quic's idle timeout is short so that a consumer that
// dies silently is noticed within the tests' bounds.
func shutdownTransports(t testing.TB) map[string]func() exchange.TransportFactory {
	cert, pin, err := quictransport.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	mem := memtransport.NewNetwork()
	return map[string]func() exchange.TransportFactory{
		"mem": mem.Factory,
		"tcp": func() exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) },
		"quic": func() exchange.TransportFactory {
			return quictransport.New(quictransport.Config{Certificate: &cert, PinnedSHA256: [][32]byte{pin},
				IdleTimeout: 2 * time.Second, KeepAlivePeriod: 500 * time.Millisecond})
		},
	}
}

func netEnv(t *testing.T, f exchange.TransportFactory) *exchange.Environment {
	t.Helper()
	e, err := exchange.NewEnvironment(context.Background(), exchange.Config{Transport: f, NetworkMemory: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		transporttest.CheckPools(t, e)
	})
	return e
}

// consumeAll reads gate to its end and checks that the records are the
// sequence 0..n-1 of each channel (8-byte big-endian numbers, 4 more
// bytes of filler).
func consumeAll(ctx context.Context, g *exchange.InputGate, channels int) (int, error) {
	next := make([]uint64, channels)
	total := 0
	var bad error
	for {
		err := g.NextBatch(ctx, func(e exchange.Element) bool {
			if e.Record == nil {
				return true
			}
			if len(e.Record) != 12 || binary.BigEndian.Uint64(e.Record) != next[e.Channel] {
				if bad == nil {
					bad = fmt.Errorf("channel %d: record %d is %x", e.Channel, next[e.Channel], e.Record)
				}
			}
			next[e.Channel]++
			total++
			return true
		})
		if errors.Is(err, io.EOF) {
			return total, bad
		}
		if err != nil {
			return total, err
		}
	}
}

// TestShutdownDelivers: a producer that emits its records, finishes and
// shuts its environment down at once loses none of them: Shutdown
// returns only once the consumer took every EndOfPartition.
func TestShutdownDelivers(t *testing.T) {
	records := 2_000_000
	if raceEnabled {
		records = 100_000 // TestShutdownDeliversMany runs 2,000,000 without -race in CI
	}
	testShutdownDelivers(t, records)
}

func testShutdownDelivers(t *testing.T, records int) {
	for name, factory := range shutdownTransports(t) {
		t.Run(name, func(t *testing.T) {
			defer transporttest.CheckGoroutines(t)()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			prod, err := exchange.NewEnvironment(ctx, exchange.Config{Transport: factory(), NetworkMemory: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			cons, err := exchange.NewEnvironment(ctx, exchange.Config{Transport: factory(), NetworkMemory: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer transporttest.CheckPools(t, cons)
			defer cons.Close()
			const subs = 2
			id := exchange.PartitionIDFromName("shutdown-"+name, 0)
			part, err := prod.CreatePartition(exchange.PartitionConfig{ID: id, Subpartitions: subs})
			if err != nil {
				t.Fatal(err)
			}
			type result struct {
				n   int
				err error
			}
			results := make(chan result, subs)
			for s := range subs {
				g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: id, Subpartition: s, Addr: prod.Addr()}}})
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					n, err := consumeAll(ctx, g, 1)
					results <- result{n, err}
				}()
			}
			start := time.Now()
			rec := make([]byte, 12)
			for i := range records {
				binary.BigEndian.PutUint64(rec, uint64(i/subs))
				if err := part.EmitTo(ctx, i%subs, rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := part.Finish(ctx); err != nil {
				t.Fatal(err)
			}
			emitted := time.Since(start)
			sdCtx, sdCancel := context.WithTimeout(ctx, 20*time.Second)
			defer sdCancel()
			if err := prod.Shutdown(sdCtx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			took := time.Since(start) - emitted
			transporttest.CheckPools(t, prod)
			got := 0
			for range subs {
				r := <-results
				if r.err != nil {
					t.Fatal(r.err)
				}
				got += r.n
			}
			if got != records {
				t.Fatalf("consumer got %d records, want %d", got, records)
			}
			t.Logf("%s: %d records emitted and finished in %v; Shutdown took %v", name, records, emitted.Round(time.Millisecond), took.Round(time.Millisecond))
		})
	}
}
