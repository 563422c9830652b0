package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
)

// The one correct ending of a producer: EndOfData, every consumer's
// acknowledgement, Finish, then Shutdown, which returns once the
// consumer took EndOfPartition, so closing loses nothing
// (docs/architecture.md, "Shutdown").
func ExampleEnvironment_Shutdown() {
	ctx := context.Background()
	network := memtransport.NewNetwork() // tcptransport.New or quictransport.New in production
	producer, _ := exchange.NewEnvironment(ctx, exchange.Config{Transport: network.Factory()})
	consumer, _ := exchange.NewEnvironment(ctx, exchange.Config{Transport: network.Factory()})
	defer consumer.Close()
	part, _ := producer.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})

	// The consumer reads to the end and acknowledges EndOfData.
	received := make(chan int)
	go func() {
		gate, _ := consumer.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: part.ID(), Addr: producer.Addr()}}})
		defer gate.Close()
		n := 0
		for {
			e, err := gate.Next(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					fmt.Println(err)
				}
				received <- n
				return
			}
			switch e.Event.(type) {
			case nil:
				n++
			case exchange.EndOfData:
				gate.AckAllRecordsProcessed()
			}
		}
	}()

	for i := range 1000 {
		part.EmitTo(ctx, 0, fmt.Appendf(nil, "record %d", i))
	}
	part.EndOfData(ctx)
	if err := part.WaitAllRecordsProcessed(ctx); err != nil {
		fmt.Println(err) // a *ConsumerLostError names a consumer that went away
		return
	}
	part.Finish(ctx)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := producer.Shutdown(sctx); err != nil {
		fmt.Println(err) // an *UndeliveredError counts what was not consumed
	}
	fmt.Println("received:", <-received)
	// Output: received: 1000
}
