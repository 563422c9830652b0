package tcptransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/tcptransport"
)

// Two nodes on loopback TCP: a producer with one partition and a consumer
// reading it through the network.
func Example() {
	ctx := context.Background()
	node := func() *exchange.Environment {
		e, err := exchange.NewEnvironment(ctx, exchange.Config{
			ListenAddr: "127.0.0.1:0",
			Transport:  tcptransport.New(tcptransport.Config{}),
		})
		if err != nil {
			panic(err)
		}
		return e
	}
	producer, consumer := node(), node()
	defer producer.Close()
	defer consumer.Close()

	p, err := producer.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		panic(err)
	}
	g, err := consumer.CreateInputGate(exchange.GateConfig{
		Channels: []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: 0, Addr: producer.Addr()}},
	})
	if err != nil {
		panic(err)
	}
	go func() {
		w := exchange.NewRecordWriter(p, exchange.Forward{})
		for _, r := range []string{"alpha", "beta", "gamma"} {
			if err := w.Emit(ctx, []byte(r)); err != nil {
				panic(err)
			}
		}
		w.Finish(ctx) // flushes and sends EndOfPartition
	}()
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			panic(err)
		}
		if e.Event == nil {
			fmt.Printf("channel %d: %s\n", e.Channel, e.Record)
		}
	}
	g.Close()
	// Output:
	// channel 0: alpha
	// channel 0: beta
	// channel 0: gamma
}
