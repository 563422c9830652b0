package exchange_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/qexchange/qexchange/exchange"
)

// Batches on both sides: EmitAll takes the writer's lock once for a slice
// of records, NextBatch hands a buffer's records to a function.
func ExampleRecordWriter_EmitAll() {
	ctx := context.Background()
	env, _ := exchange.NewEnvironment(ctx, exchange.Config{})
	defer env.Close()
	part, _ := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 2})
	gate, _ := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{
		{Partition: part.ID(), Subpartition: 0},
		{Partition: part.ID(), Subpartition: 1},
	}})
	defer gate.Close()

	w := exchange.NewRecordWriter(part, &exchange.RoundRobin{})
	batch := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}
	if n, err := w.EmitAll(ctx, batch); err != nil {
		fmt.Println("wrote", n, "then:", err)
		return
	}
	w.Finish(ctx)

	perChannel := make([]string, 2)
	for {
		err := gate.NextBatch(ctx, func(e exchange.Element) bool {
			if e.Event == nil {
				perChannel[e.Channel] += string(e.Record) // copy: Record is valid only during the call
			}
			return true
		})
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(perChannel)
	// Output: [ac bd]
}
