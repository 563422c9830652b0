package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// isSpace is [:space:] in the C locale, the set `tr -s '[:space:]'` uses.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r'
}

// splitWords calls emit for every word that starts in data[from:to]; a
// word crossing to belongs to this split, one crossing from to the
// previous one, so the splits of a file partition its words.
func splitWords(data []byte, from, to int, emit func([]byte) error) error {
	i := from
	if i > 0 && !isSpace(data[i-1]) {
		for i < len(data) && !isSpace(data[i]) {
			i++
		}
	}
	for {
		for i < len(data) && isSpace(data[i]) {
			i++
		}
		if i >= len(data) || i >= to {
			return nil
		}
		j := i
		for j < len(data) && !isSpace(data[j]) {
			j++
		}
		if err := emit(data[i:j]); err != nil {
			return err
		}
		i = j
	}
}

// runSource reads its split of the input file and hash-partitions the
// words (xxhash of the word) to the counters.
func runSource(ctx context.Context, env *exchange.Environment, d deployment) (int64, error) {
	data, err := os.ReadFile(d.Input)
	if err != nil {
		return 0, err
	}
	part, err := env.CreatePartition(exchange.PartitionConfig{
		ID: exchange.PartitionIDFromName(d.Job, d.Index), Subpartitions: d.Counters,
	})
	if err != nil {
		return 0, err
	}
	w := exchange.NewRecordWriter(part, exchange.Hash{}) // key: the whole record, the word
	from, to := d.Index*len(data)/d.Sources, (d.Index+1)*len(data)/d.Sources
	var n int64
	var pace *time.Ticker
	if d.Throttle > 0 {
		pace = time.NewTicker(time.Second / 100)
		defer pace.Stop()
	}
	err = splitWords(data, from, to, func(word []byte) error {
		n++
		if pace != nil && n%int64(max(1, d.Throttle/100)) == 0 {
			select {
			case <-pace.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return w.Emit(ctx, word)
	})
	if err != nil {
		return n, err
	}
	return n, w.Finish(ctx)
}

// runCounter counts the words of its subpartition of every source and
// writes "count word" lines, sorted by word, to Output/part-<index>.
func runCounter(ctx context.Context, env *exchange.Environment, d deployment) (int64, int, error) {
	chans := make([]exchange.ChannelSpec, d.Sources)
	for i := range chans {
		chans[i] = exchange.ChannelSpec{Partition: exchange.PartitionIDFromName(d.Job, i), Subpartition: d.Index, Addr: d.Producers[i]}
	}
	gate, err := env.CreateInputGate(exchange.GateConfig{Channels: chans})
	if err != nil {
		return 0, 0, err
	}
	defer gate.Close()
	counts := map[string]int64{}
	var n int64
	for {
		e, err := gate.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, 0, err
		}
		if e.Record != nil {
			counts[string(e.Record)]++
			n++
		}
	}
	return n, len(counts), writeCounts(filepath.Join(d.Output, fmt.Sprintf("part-%d", d.Index)), counts)
}

func writeCounts(path string, counts map[string]int64) error {
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.Sort(words)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	for _, w := range words {
		fmt.Fprintf(bw, "%d %s\n", counts[w], w)
	}
	if err := errors.Join(bw.Flush(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
