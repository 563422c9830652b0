package typed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/typed"
)

// Word count in one process: words are hash-partitioned by value to two
// counters, so each counter sees every occurrence of its words.
func Example() {
	ctx := context.Background()
	env, _ := exchange.NewEnvironment(ctx, exchange.Config{})
	defer env.Close()
	part, _ := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 2})
	gate, _ := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{
		{Partition: part.ID(), Subpartition: 0},
		{Partition: part.ID(), Subpartition: 1},
	}})
	defer gate.Close()

	words := typed.NewWriter[string](part, typed.String{}, typed.HashKey[string]{Key: func(w string) string { return w }})
	go func() {
		for _, w := range strings.Fields("the cat saw the other cat") {
			words.Emit(ctx, w)
		}
		words.Finish(ctx)
	}()

	counts := map[string]int{}
	in := typed.NewGate[string](gate, typed.String{})
	for {
		e, err := in.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if e.Event == nil {
			counts[e.Value]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Println(k, counts[k])
	}
	// Output:
	// cat 2
	// other 1
	// saw 1
	// the 2
}

// Fixed-size values travel as little-endian binary, with no allocation
// per record.
func ExampleNewFixed() {
	type reading struct {
		Sensor uint32
		Value  float64
	}
	codec, err := typed.NewFixed[reading]()
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := codec.Append(nil, reading{Sensor: 7, Value: 21.5})
	r, _ := codec.Decode(b)
	fmt.Println(codec.Size(), r.Sensor, r.Value)
	// Output: 12 7 21.5
}
