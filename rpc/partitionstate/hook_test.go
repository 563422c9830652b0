package partitionstate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/rpc"
	"github.com/qexchange/qexchange/rpc/partitionstate"
	"github.com/qexchange/qexchange/tcptransport"
)

// TestConsumerOfFailedProducerFailsFast: the producer fails before its
// partition exists; the consumer's gate, asking the coordinator on
// PartitionNotFound, fails the channel within 500 ms with the producer's
// reason instead of retrying for 10 s.
func TestConsumerOfFailedProducerFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	coordinator, node := services(t, rpc.TCP)
	tracker, err := partitionstate.NewTracker(ctx, coordinator)
	if err != nil {
		t.Fatal(err)
	}
	client, err := partitionstate.Connect(ctx, node, coordinator.Addr())
	if err != nil {
		t.Fatal(err)
	}
	newEnv := func() *exchange.Environment {
		env, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20,
			Transport: tcptransport.New(tcptransport.Config{})})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { env.Close() })
		return env
	}
	producer, consumer := newEnv(), newEnv()
	id := exchange.PartitionIDFromName("job", 0)
	if err := tracker.Report(ctx, partitionstate.Report{Partition: id, Producer: "source-0", State: partitionstate.Deploying}); err != nil {
		t.Fatal(err)
	}
	if err := client.Report(ctx, partitionstate.Report{Partition: id, Producer: "source-0", State: partitionstate.Failed, Reason: "input file missing"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	gate, err := consumer.CreateInputGate(exchange.GateConfig{
		Channels:              []exchange.ChannelSpec{{Partition: id, Addr: producer.Addr()}},
		PartitionStateChecker: client,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gate.Next(ctx)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("channel failed after %v, want within 500ms", d)
	}
	if !errors.Is(err, exchange.ErrPartitionNotFound) || !errors.Is(err, partitionstate.ErrProducerFailed) || !strings.Contains(err.Error(), "input file missing") {
		t.Fatalf("gate: %v", err)
	}
	// Without a checker: today's blind retry (still waiting after 500ms).
	gate2, err := consumer.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: id, Addr: producer.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	if _, err := gate2.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("without a checker: %v", err)
	}
}
