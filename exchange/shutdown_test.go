package exchange_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/transporttest/faultproxy"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// shutdownTransports are the transports the shutdown tests run on: one
// factory per node. quic's idle timeout is short so that a consumer that
// dies silently is noticed within the tests' bounds.
func shutdownTransports(t testing.TB) map[string]func() exchange.TransportFactory {
	cert, pin, err := tlsconf.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	mem := memtransport.NewNetwork()
	return map[string]func() exchange.TransportFactory{
		"mem": mem.Factory,
		"tcp": func() exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) },
		"quic": func() exchange.TransportFactory {
			return quictransport.New(quictransport.Config{
				TLS:             tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}},
				IdleTimeout:     2 * time.Second,
				KeepAlivePeriod: 500 * time.Millisecond,
			})
		},
	}
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

// TestConsumerLost: a consumer that dies mid-stream (its process closed
// on mem and tcp, its path silenced on quic, as a killed process would
// leave it) is reported to the producer, naming it, by
// WaitAllRecordsProcessed (within 2 s on tcp, the idle timeout + 2 s on
// quic), by Finish, and by Shutdown, which returns at once with the
// count of what was not consumed instead of waiting for its bound. The
// consumer's side of a silenced quic path fails within the same bound.
func TestConsumerLost(t *testing.T) {
	for name, factory := range shutdownTransports(t) {
		t.Run(name, func(t *testing.T) {
			defer transporttest.CheckGoroutines(t)()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			prod, err := exchange.NewEnvironment(ctx, exchange.Config{Transport: factory(), NetworkMemory: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer transporttest.CheckPools(t, prod)
			defer prod.Close()
			cons, err := exchange.NewEnvironment(ctx, exchange.Config{Transport: factory(), NetworkMemory: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer transporttest.CheckPools(t, cons)
			defer cons.Close()
			addr := prod.Addr()
			// kill ends the consumer as a killed process would.
			kill := func() { cons.Close() }
			detect := 2 * time.Second
			if name == "quic" {
				px, err := faultproxy.NewUDP(prod.Addr(), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer px.Close()
				addr = px.Addr()
				kill = px.Cut
				detect += 2 * time.Second // the test's IdleTimeout
			}
			id := exchange.PartitionIDFromName("lost-"+name, 0)
			part, err := prod.CreatePartition(exchange.PartitionConfig{ID: id, Subpartitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: id, Addr: addr}}})
			if err != nil {
				t.Fatal(err)
			}
			// The consumer reads a little, then stops reading: the
			// producer fills its buffers and waits (backpressure).
			rec := make([]byte, 12)
			emitted := make(chan error, 1)
			go func() {
				for i := range 500_000 {
					binary.BigEndian.PutUint64(rec, uint64(i))
					if err := part.EmitTo(ctx, 0, rec); err != nil {
						emitted <- err
						return
					}
				}
				emitted <- nil
			}()
			for range 1000 {
				if _, err := g.Next(ctx); err != nil {
					t.Fatal(err)
				}
			}
			gateErr := make(chan error, 1)
			if name == "quic" {
				// The consumer keeps reading after the cut, until its side
				// of the silent path times out.
				go func() {
					for {
						if _, err := g.Next(ctx); err != nil {
							gateErr <- err
							return
						}
					}
				}()
			}
			killed := time.Now()
			kill()

			err = part.WaitAllRecordsProcessed(ctx)
			took := time.Since(killed)
			var lost *exchange.ConsumerLostError
			if !errors.As(err, &lost) || !errors.Is(err, exchange.ErrConsumerLost) || lost.Partition != id || lost.Subpartition != 0 ||
				!strings.HasPrefix(lost.Consumer, "127.0.0.1:") && !(name == "mem" && lost.Consumer != "") {
				t.Fatalf("WaitAllRecordsProcessed: %v, want a ConsumerLostError naming the consumer", err)
			}
			if took > detect {
				t.Fatalf("producer learned of the consumer's death after %v, want <= %v", took, detect)
			}
			t.Logf("%s: producer learned of the consumer's death after %v: %v", name, took.Round(time.Millisecond), err)
			select {
			case <-part.AllRecordsProcessed():
			default:
				t.Fatal("AllRecordsProcessed not closed after the consumer was lost")
			}
			if err := <-emitted; err != nil {
				t.Fatalf("emitting for a lost consumer: %v (records are dropped, counted and reported at Finish)", err)
			}
			if err := part.Finish(ctx); !errors.As(err, &lost) {
				t.Fatalf("Finish: %v, want a ConsumerLostError", err)
			}
			if name == "quic" {
				select {
				case err := <-gateErr:
					if !errors.Is(err, exchange.ErrConnectionLost) {
						t.Fatalf("consumer after the cut: %v, want ErrConnectionLost", err)
					}
					t.Logf("quic: consumer failed %v after the cut: %v", time.Since(killed).Round(time.Millisecond), err)
				case <-time.After(detect + time.Second - time.Since(killed)):
					t.Fatalf("consumer still waiting %v after the cut", detect+time.Second)
				}
			}
			sdStart := time.Now()
			sdCtx, sdCancel := context.WithTimeout(ctx, 10*time.Second)
			defer sdCancel()
			err = prod.Shutdown(sdCtx)
			var ue *exchange.UndeliveredError
			if !errors.As(err, &ue) || !errors.Is(err, exchange.ErrUndelivered) || !errors.Is(err, exchange.ErrConsumerLost) ||
				ue.Subpartitions != 1 || ue.Buffers < 1 || len(ue.Lost) != 1 || ue.Cause != nil {
				t.Fatalf("Shutdown: %v, want an UndeliveredError for 1 subpartition with its lost consumer", err)
			}
			if d := time.Since(sdStart); d > time.Second {
				t.Fatalf("Shutdown took %v with its only consumer lost, want it at once", d)
			}
			t.Logf("%s: Shutdown after %v: %v", name, time.Since(sdStart).Round(time.Millisecond), err)
		})
	}
}

// TestShutdownBoundExpires: a finished partition nobody consumes makes
// Shutdown give up at its bound and say what was left.
func TestShutdownBoundExpires(t *testing.T) {
	n := memtransport.NewNetwork()
	prod, err := exchange.NewEnvironment(context.Background(), exchange.Config{Transport: n.Factory()})
	if err != nil {
		t.Fatal(err)
	}
	defer transporttest.CheckPools(t, prod)
	part, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if err := part.EmitTo(ctx, i, []byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	if err := part.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	const bound = 200 * time.Millisecond
	sdCtx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	start := time.Now()
	err = prod.Shutdown(sdCtx)
	took := time.Since(start)
	var ue *exchange.UndeliveredError
	// Each subpartition holds its record's buffer and EndOfPartition.
	if !errors.As(err, &ue) || ue.Subpartitions != 3 || ue.Buffers != 6 || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, exchange.ErrConsumerLost) {
		t.Fatalf("Shutdown: %v, want an UndeliveredError of 3 subpartitions and 6 buffers after the deadline", err)
	}
	if took < bound || took > bound+time.Second {
		t.Fatalf("Shutdown returned after %v, want about %v", took, bound)
	}
	if !strings.Contains(err.Error(), "3 subpartition(s) with 6 buffer(s) not consumed") {
		t.Fatalf("message %q does not say what was left", err)
	}
	prod.Close()
}

// TestShutdownLocalChannels: a local channel (same environment) counts
// as delivered once it read EndOfPartition, and one closed before is a
// lost consumer named "local".
func TestShutdownLocalChannels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := exchange.NewEnvironment(ctx, exchange.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer transporttest.CheckPools(t, env)
	part, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	gate := func(sub int) *exchange.InputGate {
		g, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: part.ID(), Subpartition: sub}}})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	reader, quitter := gate(0), gate(1)
	for i := range 1000 {
		rec := make([]byte, 12)
		binary.BigEndian.PutUint64(rec, uint64(i))
		if err := part.EmitTo(ctx, 0, rec); err != nil {
			t.Fatal(err)
		}
	}
	quitter.Close()
	var lost *exchange.ConsumerLostError
	if err := part.Finish(ctx); !errors.As(err, &lost) || lost.Consumer != "local" || lost.Subpartition != 1 {
		t.Fatalf("Finish: %v, want subpartition 1's local consumer lost", err)
	}
	if n, err := consumeAll(ctx, reader, 1); n != 1000 || err != nil {
		t.Fatalf("local reader: %d records, %v", n, err)
	}
	err = env.Shutdown(ctx)
	var ue *exchange.UndeliveredError
	if !errors.As(err, &ue) || ue.Subpartitions != 1 || len(ue.Lost) != 1 || ue.Cause != nil {
		t.Fatalf("Shutdown: %v, want only subpartition 1 undelivered", err)
	}
}
