// Command typed-wordcount counts the words of a text with typed records:
// a source emits each word as a string, hash-partitioned by the word to
// N counters, which each count the words they own. Output is sorted by
// word, one "count word" per line, the same as
//
//	tr -s '[:space:]' '\n' < FILE | sort | uniq -c
//
// without uniq's padding.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/typed"
)

func main() {
	counters := flag.Int("counters", 4, "number of counting tasks")
	flag.Parse()
	in := io.Reader(os.Stdin)
	if flag.NArg() > 0 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "typed-wordcount:", err)
			os.Exit(2)
		}
		defer f.Close()
		in = f
	}
	if err := run(context.Background(), in, os.Stdout, *counters); err != nil {
		fmt.Fprintln(os.Stderr, "typed-wordcount:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, in io.Reader, out io.Writer, counters int) error {
	env, err := exchange.NewEnvironment(ctx, exchange.Config{})
	if err != nil {
		return err
	}
	defer env.Close()
	part, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: counters})
	if err != nil {
		return err
	}
	byWord := typed.HashKey[string]{Key: func(w string) string { return w }}
	words := typed.NewWriter[string](part, typed.String{}, byWord)

	results := make([]map[string]int, counters)
	errs := make([]error, counters+1)
	var wg sync.WaitGroup
	for i := range counters {
		gate, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: part.ID(), Subpartition: i}}})
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer gate.Close()
			results[i], errs[i] = count(ctx, typed.NewGate[string](gate, typed.String{}))
		})
	}
	sc := bufio.NewScanner(in)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		if err := words.Emit(ctx, sc.Text()); err != nil {
			return err
		}
	}
	errs[counters] = errors.Join(sc.Err(), words.Finish(ctx))
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return print(out, results)
}

// count is one counter task: it owns every word hashed to its channel.
func count(ctx context.Context, words *typed.Gate[string]) (map[string]int, error) {
	counts := map[string]int{}
	for {
		e, err := words.Next(ctx)
		if errors.Is(err, io.EOF) {
			return counts, nil
		}
		if err != nil {
			return nil, err
		}
		if e.Event == nil {
			counts[e.Value]++
		}
	}
}

func print(out io.Writer, results []map[string]int) error {
	var all []string
	merged := map[string]int{}
	for _, r := range results {
		for w, n := range r {
			if _, dup := merged[w]; dup {
				return fmt.Errorf("word %q counted by two counters: hash partitioning broken", w)
			}
			merged[w] = n
			all = append(all, w)
		}
	}
	sort.Strings(all)
	bw := bufio.NewWriter(out)
	for _, w := range all {
		fmt.Fprintf(bw, "%d %s\n", merged[w], w)
	}
	return bw.Flush()
}
