package exchange

import (
	"context"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// ChannelSelector picks the subpartition of each record (Flink's
// ChannelSelector).
type ChannelSelector interface {
	// SelectChannel returns the subpartition in [0, n) for record.
	SelectChannel(record []byte, n int) int
	// IsBroadcast: every record goes to every subpartition (one copy).
	IsBroadcast() bool
}

// RoundRobin sends records to subpartitions in turn.
type RoundRobin struct{ next int }

// SelectChannel implements ChannelSelector.
func (r *RoundRobin) SelectChannel(_ []byte, n int) int {
	i := r.next
	if i >= n {
		i = 0
	}
	r.next = i + 1
	return i
}

// IsBroadcast implements ChannelSelector.
func (*RoundRobin) IsBroadcast() bool { return false }

// Hash sends records with equal keys to the same subpartition, by the
// xxhash of Key(record) (the whole record if Key is nil).
type Hash struct {
	Key func(record []byte) []byte
}

// SelectChannel implements ChannelSelector.
func (h Hash) SelectChannel(record []byte, n int) int {
	k := record
	if h.Key != nil {
		k = h.Key(record)
	}
	return int(xxhash.Sum64(k) % uint64(n))
}

// IsBroadcast implements ChannelSelector.
func (Hash) IsBroadcast() bool { return false }

// Broadcast sends every record to every subpartition.
type Broadcast struct{}

// SelectChannel implements ChannelSelector.
func (Broadcast) SelectChannel([]byte, int) int { return 0 }

// IsBroadcast implements ChannelSelector.
func (Broadcast) IsBroadcast() bool { return true }

// Forward sends every record to subpartition 0 (a one-to-one connection
// between a producer and its single consumer).
type Forward struct{}

// SelectChannel implements ChannelSelector.
func (Forward) SelectChannel([]byte, int) int { return 0 }

// IsBroadcast implements ChannelSelector.
func (Forward) IsBroadcast() bool { return false }

// RecordWriter serialises records into a partition's subpartitions as the
// selector decides (Flink's RecordWriter). Its records are for one
// goroutine; BroadcastEvent, Flush and Finish may come from others.
type RecordWriter struct {
	part      *ResultPartition
	sel       ChannelSelector
	broadcast bool
	// roundRobin is sel when it is a *RoundRobin.
	roundRobin *RoundRobin
}

// NewRecordWriter writes into p through sel (RoundRobin if nil).
func NewRecordWriter(p *ResultPartition, sel ChannelSelector) *RecordWriter {
	if sel == nil {
		sel = &RoundRobin{}
	}
	rr, _ := sel.(*RoundRobin)
	return &RecordWriter{part: p, sel: sel, broadcast: sel.IsBroadcast(), roundRobin: rr}
}

// Partition is the partition written to.
func (w *RecordWriter) Partition() *ResultPartition { return w.part }

// Emit writes record to the subpartition the selector picks (all of them
// for a broadcast selector). It blocks while the partition has no free
// buffer (backpressure) until ctx is done. record is copied; the caller
// may reuse it at once.
func (w *RecordWriter) Emit(ctx context.Context, record []byte) error {
	if w.broadcast {
		return w.part.BroadcastRecord(ctx, record)
	}
	// This is the per-record call, and its cost is mostly stores: the
	// fast path (appendFast) is written out here so that it makes no
	// call, which would spill registers, and the round-robin selector is
	// called directly so that it is inlined. Check -gcflags=-m and the
	// Emit benchmarks when changing it.
	p := w.part
	n := len(p.current)
	var i int
	if rr := w.roundRobin; rr != nil {
		i = rr.SelectChannel(record, n)
	} else {
		i = w.sel.SelectChannel(record, n)
	}
	// The gate first: once it is entered, nothing else reads or changes
	// the open segments (Release clears them with the gate closed).
	if uint(i) < uint(n) && len(record) <= p.maxRecord && p.gate.enter() {
		if seg := p.current[i]; seg != nil {
			if end, ok := seg.fits(record); ok {
				seg.putRecord(end, record)
				p.gate.leave()
				return nil
			}
		}
		p.gate.leave()
	}
	return w.emitSlow(ctx, i, record)
}

// emitSlow is Emit when the record does not go into an open segment.
func (w *RecordWriter) emitSlow(ctx context.Context, sub int, record []byte) error {
	if n := len(w.part.subs); uint(sub) >= uint(n) {
		return fmt.Errorf("%w: selector returned %d for %d subpartitions", ErrSubpartitionOutOfRange, sub, n)
	}
	return w.part.emitLocked(ctx, sub, record)
}

// EmitAll writes records one after the other, as Emit would, and returns
// how many it wrote: on an error, records[n] is the record that was not
// written. It is Emit's fast path in a loop, with no call per record,
// which saves about half of Emit's cost at 100 subpartitions; for a
// broadcast selector it takes the partition's writer lock once for all
// of them. The records are copied; the caller may reuse them at once.
func (w *RecordWriter) EmitAll(ctx context.Context, records [][]byte) (n int, err error) {
	if w.broadcast {
		return w.part.broadcastAll(ctx, records)
	}
	p := w.part
	subs := len(p.current)
	for k, record := range records {
		var i int
		if rr := w.roundRobin; rr != nil {
			i = rr.SelectChannel(record, subs)
		} else {
			i = w.sel.SelectChannel(record, subs)
		}
		if uint(i) < uint(subs) && len(record) <= p.maxRecord && p.gate.enter() {
			if seg := p.current[i]; seg != nil {
				if end, ok := seg.fits(record); ok {
					seg.putRecord(end, record) // as in Emit
					p.gate.leave()
					continue
				}
			}
			p.gate.leave()
		}
		if err := w.emitSlow(ctx, i, record); err != nil {
			return k, err
		}
	}
	return len(records), nil
}

// Broadcast writes record to every subpartition, whatever the selector.
func (w *RecordWriter) Broadcast(ctx context.Context, record []byte) error {
	return w.part.BroadcastRecord(ctx, record)
}

// BroadcastEvent sends ev to every subpartition.
func (w *RecordWriter) BroadcastEvent(ctx context.Context, ev Event) error {
	return w.part.BroadcastEvent(ctx, ev)
}

// Flush makes partially filled buffers available now.
func (w *RecordWriter) Flush() { w.part.Flush() }

// Finish ends the partition (EndOfPartition to every consumer).
func (w *RecordWriter) Finish(ctx context.Context) error { return w.part.Finish(ctx) }
