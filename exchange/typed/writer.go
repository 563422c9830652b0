package typed

import (
	"context"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/qexchange/qexchange/exchange"
)

// Selector picks the subpartition in [0, n) of a typed value.
type Selector[T any] interface {
	Select(v T, n int) int
}

// HashKey sends values with equal keys to the same subpartition: the
// xxhash of Key(v), exactly as exchange.Hash hashes a key's bytes.
type HashKey[T any] struct {
	Key func(v T) string
}

// Select implements Selector.
func (h HashKey[T]) Select(v T, n int) int {
	return int(xxhash.Sum64String(h.Key(v)) % uint64(n))
}

// RoundRobin sends values to subpartitions in turn.
type RoundRobin[T any] struct{ next int }

// Select implements Selector.
func (r *RoundRobin[T]) Select(_ T, n int) int {
	i := r.next
	if i >= n {
		i = 0
	}
	r.next = i + 1
	return i
}

// Writer encodes values with a Codec and emits them into a partition. Like
// exchange.RecordWriter it is for one goroutine.
type Writer[T any] struct {
	part    *exchange.ResultPartition
	codec   Codec[T]
	sel     Selector[T]
	scratch []byte
}

// NewWriter writes into p, choosing subpartitions with sel (round robin if
// nil).
func NewWriter[T any](p *exchange.ResultPartition, codec Codec[T], sel Selector[T]) *Writer[T] {
	if sel == nil {
		sel = &RoundRobin[T]{}
	}
	return &Writer[T]{part: p, codec: codec, sel: sel}
}

// Emit encodes v and writes it to the subpartition the selector picks,
// blocking under backpressure until ctx is done.
func (w *Writer[T]) Emit(ctx context.Context, v T) error {
	rec, err := w.encode(v)
	if err != nil {
		return err
	}
	n := w.part.Subpartitions()
	i := w.sel.Select(v, n)
	if uint(i) >= uint(n) {
		return fmt.Errorf("%w: selector returned %d for %d subpartitions", exchange.ErrSubpartitionOutOfRange, i, n)
	}
	return w.part.EmitTo(ctx, i, rec)
}

// Broadcast encodes v once and writes it to every subpartition.
func (w *Writer[T]) Broadcast(ctx context.Context, v T) error {
	rec, err := w.encode(v)
	if err != nil {
		return err
	}
	return w.part.BroadcastRecord(ctx, rec)
}

// Finish ends the partition (exchange.ResultPartition.Finish).
func (w *Writer[T]) Finish(ctx context.Context) error { return w.part.Finish(ctx) }

func (w *Writer[T]) encode(v T) ([]byte, error) {
	rec, err := w.codec.Append(w.scratch[:0], v)
	if err != nil {
		return nil, fmt.Errorf("typed: encode: %w", err)
	}
	w.scratch = rec // keep the grown capacity: no allocation next time
	return rec, nil
}
