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

	// EmitAll's reused state: the encodings of a batch in one arena, the
	// records sliced from it, and their subpartitions, which picked hands
	// to the RecordWriter in order.
	arena  []byte
	ends   []int
	recs   [][]byte
	picked picked
	rw     *exchange.RecordWriter
}

// picked is an exchange.ChannelSelector that returns subpartitions chosen
// beforehand, in order: EmitAll's records, whose subpartitions the typed
// selector chose from the values.
type picked struct {
	subs []int
	next int
}

// SelectChannel implements exchange.ChannelSelector.
func (p *picked) SelectChannel([]byte, int) int {
	i := p.subs[p.next]
	p.next++
	return i
}

// IsBroadcast implements exchange.ChannelSelector.
func (*picked) IsBroadcast() bool { return false }

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

// EmitAll encodes vs and writes them in order, each to the subpartition
// the selector picks, as Emit would, through
// exchange.RecordWriter.EmitAll (no call per record). It returns how
// many values it wrote: on an error (an encoding, a selector out of
// range, backpressure until ctx is done), vs[n] is the first that was not
// written. Fixed-size values cost no allocation once the writer has seen
// a batch as large.
func (w *Writer[T]) EmitAll(ctx context.Context, vs []T) (n int, err error) {
	subs := w.part.Subpartitions()
	w.arena, w.ends, w.picked.subs = w.arena[:0], w.ends[:0], w.picked.subs[:0]
	for _, v := range vs {
		a, encErr := w.codec.Append(w.arena, v)
		if encErr != nil {
			err = fmt.Errorf("typed: encode: %w", encErr)
			break
		}
		i := w.sel.Select(v, subs)
		if uint(i) >= uint(subs) {
			err = fmt.Errorf("%w: selector returned %d for %d subpartitions", exchange.ErrSubpartitionOutOfRange, i, subs)
			break
		}
		w.arena = a
		w.ends = append(w.ends, len(a))
		w.picked.subs = append(w.picked.subs, i)
	}
	// Slice the records only now: Append may have moved the arena.
	w.recs = w.recs[:0]
	start := 0
	for _, end := range w.ends {
		w.recs = append(w.recs, w.arena[start:end:end])
		start = end
	}
	if w.rw == nil {
		w.rw = exchange.NewRecordWriter(w.part, &w.picked)
	}
	w.picked.next = 0
	written, emitErr := w.rw.EmitAll(ctx, w.recs)
	if emitErr != nil {
		return written, emitErr
	}
	return written, err
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
