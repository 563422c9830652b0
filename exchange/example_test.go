package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
)

// Two nodes: a producer partition with two subpartitions on one, a gate
// reading both on the other, connected through a transport picked by name.
func Example() {
	ctx := context.Background()
	network := memtransport.NewNetwork() // tcptransport.New or quictransport.New in production
	cfg := exchange.Config{Transport: network.Factory()}

	producer, _ := exchange.NewEnvironment(ctx, cfg)
	defer producer.Close()
	consumer, _ := exchange.NewEnvironment(ctx, cfg)
	defer consumer.Close()

	part, _ := producer.CreatePartition(exchange.PartitionConfig{Subpartitions: 2})
	gate, err := consumer.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{
		{Partition: part.ID(), Subpartition: 0, Addr: producer.Addr()},
		{Partition: part.ID(), Subpartition: 1, Addr: producer.Addr()},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer gate.Close()

	w := exchange.NewRecordWriter(part, exchange.Hash{})
	for _, word := range []string{"apple", "banana", "cherry"} {
		w.Emit(ctx, []byte(word))
	}
	w.Finish(ctx)

	records := 0
	for {
		e, err := gate.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if e.Event == nil {
			records++
		}
	}
	fmt.Println("records:", records)
	// Output: records: 3
}

// A local channel reads a partition of the same node without copying.
func ExampleRecordWriter() {
	ctx := context.Background()
	env, _ := exchange.NewEnvironment(ctx, exchange.Config{})
	defer env.Close()
	part, _ := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: exchange.FlushEveryRecord})
	gate, _ := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: part.ID()}}})
	defer gate.Close()

	w := exchange.NewRecordWriter(part, exchange.Forward{})
	w.Emit(ctx, []byte("hello"))
	e, _ := gate.Next(ctx)
	fmt.Printf("%s from channel %d\n", e.Record, e.Channel)
	// Output: hello from channel 0
}

// Setup fails early, with what is needed, when memory is short.
func ExampleInsufficientBuffersError() {
	env, _ := exchange.NewEnvironment(context.Background(), exchange.Config{NetworkMemory: 1 << 20})
	defer env.Close()
	_, err := env.CreatePartition(exchange.PartitionConfig{ID: exchange.PartitionIDFromName("wordcount", 0), Subpartitions: 100})
	fmt.Println(errors.Is(err, exchange.ErrInsufficientBuffers))
	fmt.Println(err)
	// Output:
	// true
	// exchange: insufficient network buffers for partition 0fe9b5f6cb623fc3000000000be8bdff: need 101 x 32 KiB, have 32; raise NetworkMemory (or lower the channel count or SegmentSize)
}
