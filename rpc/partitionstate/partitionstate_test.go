package partitionstate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/rpc"
	"github.com/qexchange/qexchange/rpc/partitionstate"
)

func services(t *testing.T, transport string) (coordinator, node *rpc.Service) {
	t.Helper()
	t.Cleanup(transporttest.CheckGoroutines(t))
	cert, pin, err := tlsconf.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *rpc.Service {
		s, err := rpc.NewService(rpc.Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}, Transport: transport})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return mk(), mk()
}

func TestCheckPartitionState(t *testing.T) {
	for _, transport := range []string{rpc.TCP, rpc.QUIC} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			coordinator, node := services(t, transport)
			tracker, err := partitionstate.NewTracker(ctx, coordinator)
			if err != nil {
				t.Fatal(err)
			}
			c, err := partitionstate.Connect(ctx, node, coordinator.Addr())
			if err != nil {
				t.Fatal(err)
			}
			deploying := exchange.PartitionIDFromName("job", 0)
			failed := exchange.PartitionIDFromName("job", 1)
			released := exchange.PartitionIDFromName("job", 2)
			unknown := exchange.PartitionIDFromName("job", 3)
			if err := tracker.Report(ctx, partitionstate.Report{Partition: deploying, Producer: "source-0", State: partitionstate.Deploying}); err != nil {
				t.Fatal(err)
			}
			// The producer of partition 1 fails before creating it.
			if err := c.Report(ctx, partitionstate.Report{Partition: failed, Producer: "source-1", State: partitionstate.Deploying}); err != nil {
				t.Fatal(err)
			}
			if err := c.Report(ctx, partitionstate.Report{Partition: failed, Producer: "source-1", State: partitionstate.Failed, Reason: "input file missing"}); err != nil {
				t.Fatal(err)
			}
			for _, s := range []partitionstate.State{partitionstate.Consumable, partitionstate.Finished, partitionstate.Released, partitionstate.Consumable} {
				if err := c.Report(ctx, partitionstate.Report{Partition: released, Producer: "source-2", State: s}); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			for _, id := range []exchange.PartitionID{deploying, unknown} {
				if err := c.CheckPartitionState(ctx, id); err != nil {
					t.Fatalf("%s: %v, want keep retrying", id, err)
				}
			}
			err = c.CheckPartitionState(ctx, failed)
			var pe *partitionstate.ProducerError
			if !errors.Is(err, partitionstate.ErrProducerFailed) || !errors.As(err, &pe) || !strings.Contains(err.Error(), "input file missing") || !strings.Contains(err.Error(), "source-1") {
				t.Fatalf("failed producer: %v", err)
			}
			// Released is final: a late Consumable did not revive it.
			if err := c.CheckPartitionState(ctx, released); !errors.Is(err, partitionstate.ErrPartitionReleased) {
				t.Fatalf("released partition: %v", err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("answers took %v", d)
			}
			// Losing a worker fails its producers' partitions.
			if err := tracker.ProducerFailed(ctx, "source-0", "worker w1 lost"); err != nil {
				t.Fatal(err)
			}
			if err := c.CheckPartitionState(ctx, deploying); !errors.Is(err, partitionstate.ErrProducerFailed) || !strings.Contains(err.Error(), "worker w1 lost") {
				t.Fatalf("after ProducerFailed: %v", err)
			}
			// Bad reports are refused with the handler's message.
			if err := c.Report(ctx, partitionstate.Report{Partition: unknown, State: 99}); !errors.Is(err, rpc.ErrRemote) {
				t.Fatalf("bad state: %v", err)
			}
			// A coordinator that cannot answer is no reason to fail.
			if err := tracker.Endpoint().Terminate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.CheckPartitionState(ctx, failed); err != nil {
				t.Fatalf("without a tracker: %v, want keep retrying", err)
			}
		})
	}
}
