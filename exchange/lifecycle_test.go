package exchange_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
)

// TestPartitionRequestTimeout: a gate waits for a producer that never
// registers its partition for PartitionRequestTimeout in total, then
// fails the channel with an error naming the address and the wait.
func TestPartitionRequestTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := memtransport.NewNetwork()
	prod := localEnv(t, exchange.Config{Transport: n.Factory()})
	cons := localEnv(t, exchange.Config{Transport: n.Factory()})
	const total = 400 * time.Millisecond
	g, err := cons.CreateInputGate(exchange.GateConfig{
		Channels:       []exchange.ChannelSpec{{Partition: exchange.PartitionIDFromName("never", 0), Addr: prod.Addr()}},
		InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, PartitionRequestTimeout: total,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	start := time.Now()
	_, err = g.Next(ctx)
	took := time.Since(start)
	var nf *exchange.PartitionNotFoundError
	if !errors.As(err, &nf) || nf.Peer != prod.Addr() || nf.Waited < total {
		t.Fatalf("Next: %v, want a PartitionNotFoundError naming %s after %v", err, prod.Addr(), total)
	}
	if took < total || took > total+2*time.Second {
		t.Fatalf("failed after %v, want about %v", took, total)
	}
}

// TestShutdownBounded: Shutdown closes like Close, and returns the
// context's error when the close outlasts it.
func TestShutdownBounded(t *testing.T) {
	e, err := exchange.NewEnvironment(context.Background(), exchange.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreatePartition(exchange.PartitionConfig{Subpartitions: 1}); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("CreatePartition after Shutdown: %v, want ErrClosed", err)
	}
	e2, err := exchange.NewEnvironment(context.Background(), exchange.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e2.Shutdown(done); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a done context: %v", err)
	}
	e2.Close() // waits for the close Shutdown started
}
