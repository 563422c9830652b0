package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/qexchange/qexchange/exchange"
)

// A BLOCKING partition is written to disk, then read completely by one
// consumer and again, from the start, by another.
func ExampleResultPartition_blocking() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "blocking-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	env, err := exchange.NewEnvironment(ctx, exchange.Config{SpillDir: dir})
	if err != nil {
		panic(err)
	}
	defer env.Close()

	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, Type: exchange.Blocking})
	if err != nil {
		panic(err)
	}
	for _, r := range []string{"alpha", "beta", "gamma"} {
		if err := p.EmitTo(ctx, 0, []byte(r)); err != nil {
			panic(err)
		}
	}
	if err := p.Finish(ctx); err != nil { // now consumable, from disk
		panic(err)
	}
	for consumer := 1; consumer <= 2; consumer++ {
		g, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID()}}})
		if err != nil {
			panic(err)
		}
		for {
			e, err := g.Next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				panic(err)
			}
			if e.Event == nil {
				fmt.Printf("consumer %d: %s\n", consumer, e.Record)
			}
		}
		g.Close()
	}
	p.Release() // deletes the file
	// Output:
	// consumer 1: alpha
	// consumer 1: beta
	// consumer 1: gamma
	// consumer 2: alpha
	// consumer 2: beta
	// consumer 2: gamma
}
