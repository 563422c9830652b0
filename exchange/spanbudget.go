package exchange

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// DefaultSpanningRecordMemory is Config.SpanningRecordMemory when it is 0
// and MaxRecordSize is at most 16 MiB; above, the default is four records
// of MaxRecordSize.
const DefaultSpanningRecordMemory = 64 << 20

// spillKeep is the spill capacity a channel keeps from one spanning record
// to the next, outside Config.SpanningRecordMemory: spanning records of
// up to this size (length prefix included), the usual case with small
// records, cost neither budget nor an allocation. It is bounded by the
// node's own channel count, never by what a peer claims.
const spillKeep = 4 << 10

// ErrSpanningRecordMemory: a record that spans network buffers could not
// be assembled because the node's Config.SpanningRecordMemory is taken by
// other channels' partial records. The channel fails at once (it does not
// wait: the memory may be held by a record that only the same InputGate.Next
// could complete).
var ErrSpanningRecordMemory = errors.New("exchange: spanning record memory exhausted")

// SpanningRecordMemoryError is the failure of a channel whose spanning
// record found no room in Config.SpanningRecordMemory. The *ChannelError
// around it names the channel.
type SpanningRecordMemoryError struct {
	// Peer is the producer's address; empty for a local channel.
	Peer string
	// RecordSize is the record's length as its prefix claims it.
	RecordSize int
	// Assembled is how many bytes of it (prefix included) had arrived.
	Assembled int
	// Budget is Config.SpanningRecordMemory.
	Budget int64
}

func (e *SpanningRecordMemoryError) Error() string {
	from := "a local producer"
	if e.Peer != "" {
		from = "producer " + e.Peer
	}
	return fmt.Sprintf("exchange: record of %d bytes from %s spans network buffers and found no room after %d bytes: SpanningRecordMemory (%d bytes) is taken by other channels' partial records",
		e.RecordSize, from, e.Assembled, e.Budget)
}

func (e *SpanningRecordMemoryError) Unwrap() error { return ErrSpanningRecordMemory }

// spanBudget is the node's Config.SpanningRecordMemory: the capacity of
// the spill buffers above spillKeep that are live at once. A nil
// spanBudget is unlimited.
type spanBudget struct {
	limit int64
	used  atomic.Int64
}

func (b *spanBudget) tryAcquire(n int64) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

func (b *spanBudget) release(n int64) {
	if b != nil {
		b.used.Add(-n)
	}
}

func (b *spanBudget) inUse() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// SpanningRecordMemoryInUse is how much of Config.SpanningRecordMemory
// the node's input channels hold right now for records that span network
// buffers (0 when no such record is half read).
func (e *Environment) SpanningRecordMemoryInUse() int64 { return e.spanBudget.inUse() }
