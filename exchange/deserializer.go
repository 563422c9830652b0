package exchange

import (
	"encoding/binary"
	"fmt"
)

// deserializer splits a channel's buffers back into length-prefixed
// records (Flink's SpillingAdaptiveSpanningRecordDeserializer). Records
// that lie wholly inside a buffer are returned as slices of it (no copy);
// records that span buffers are assembled in a spill slice that grows as
// their bytes arrive (never to the length a peer claims up front). Up to
// spillKeep bytes it is a small slice the channel keeps; above, its
// capacity comes from the node's budget (Config.SpanningRecordMemory) and
// goes back, with the memory, once the record has been handed out
// (docs/architecture.md, "Input gates and channels").
type deserializer struct {
	buf  Buffer
	data []byte
	pos  int

	spill     []byte // partial record: 4-byte length, then payload
	spillDone bool   // spill holds a record handed out; freed on next call
	maxRecord int

	kept    []byte      // the small spill (cap spillKeep), reused; nil until needed
	budget  *spanBudget // where a larger spill's capacity comes from
	charged int64       // capacity of spill taken from budget (0: spill is kept)
	peer    string      // the producer's address for errors; "" if local
}

func newDeserializer(env *Environment, peer string) deserializer {
	return deserializer{maxRecord: env.cfg.MaxRecordSize, budget: env.spanBudget, peer: peer}
}

// setBuffer hands the deserializer its next buffer; the previous one must
// be exhausted.
func (d *deserializer) setBuffer(b Buffer) {
	d.buf = b
	d.data = b.Bytes()
	d.pos = 0
}

// hasBuffer reports whether the deserializer still holds a buffer.
func (d *deserializer) hasBuffer() bool { return !d.buf.IsZero() }

// nextInBuffer is the gate's per-record fast path: the next record if it
// lies wholly inside the current buffer, else ok=false and nothing
// changed (next then handles spanning records, the buffer's end and
// errors). It touches only data, pos and spill, never buf: dropBuffer,
// which Close calls, touches only buf.
func (d *deserializer) nextInBuffer() (rec []byte, ok bool) {
	rest := d.data[d.pos:]
	if len(d.spill) != 0 || len(rest) < 4 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(rest))
	if n > d.maxRecord || n > len(rest)-4 {
		return nil, false
	}
	d.pos += 4 + n
	return rest[4 : 4+n : 4+n], true
}

// next returns the next complete record, or ok=false when the buffer is
// exhausted (the buffer has then been released). The record is valid
// until the next call.
func (d *deserializer) next() (rec []byte, ok bool, err error) {
	if d.spillDone {
		d.freeSpill()
		d.spillDone = false
	}
	if len(d.spill) > 0 {
		rec, ok, err = d.continueSpanning()
		if ok || err != nil {
			return rec, ok, err
		}
		d.releaseBuffer()
		return nil, false, nil
	}
	rest := len(d.data) - d.pos
	if rest >= 4 {
		n := int(binary.BigEndian.Uint32(d.data[d.pos:]))
		if n > d.maxRecord {
			return nil, false, d.tooLarge(n)
		}
		if 4+n <= rest {
			rec = d.data[d.pos+4 : d.pos+4+n : d.pos+4+n]
			d.pos += 4 + n
			return rec, true, nil
		}
	}
	if rest > 0 {
		total := 0
		if rest >= 4 {
			total = 4 + int(binary.BigEndian.Uint32(d.data[d.pos:]))
		}
		if err := d.room(rest, total); err != nil {
			return nil, false, err
		}
		d.spill = append(d.spill, d.data[d.pos:]...)
		d.pos = len(d.data)
	}
	d.releaseBuffer()
	return nil, false, nil
}

func (d *deserializer) continueSpanning() ([]byte, bool, error) {
	if len(d.spill) < 4 {
		take := min(4-len(d.spill), len(d.data)-d.pos)
		d.spill = append(d.spill, d.data[d.pos:d.pos+take]...)
		d.pos += take
		if len(d.spill) < 4 {
			return nil, false, nil
		}
	}
	n := int(binary.BigEndian.Uint32(d.spill))
	if n > d.maxRecord {
		return nil, false, d.tooLarge(n)
	}
	need := 4 + n - len(d.spill)
	take := min(need, len(d.data)-d.pos)
	if err := d.room(take, 4+n); err != nil {
		return nil, false, err
	}
	d.spill = append(d.spill, d.data[d.pos:d.pos+take]...)
	d.pos += take
	if take < need {
		return nil, false, nil
	}
	d.spillDone = true
	return d.spill[4:], true, nil
}

// room makes spill able to take extra more bytes of a record of total
// bytes (length prefix included; 0 while the prefix is incomplete).
// Capacity doubles, up to the record's total, as its bytes arrive, so a
// length a peer claims costs nothing until the bytes are there. Above
// spillKeep every byte of capacity comes from the budget; a record that
// cannot get it fails the channel.
func (d *deserializer) room(extra, total int) error {
	need := len(d.spill) + extra
	if need <= cap(d.spill) {
		return nil
	}
	if need <= spillKeep {
		// spill is the kept slice (or nil): a big one has more capacity.
		if d.kept == nil {
			d.kept = make([]byte, 0, spillKeep)
		}
		d.spill = append(d.kept[:0], d.spill...)
		return nil
	}
	grown := max(need, min(2*cap(d.spill), total))
	if !d.budget.tryAcquire(int64(grown) - d.charged) {
		grown = need
		if !d.budget.tryAcquire(int64(grown) - d.charged) {
			err := &SpanningRecordMemoryError{Peer: d.peer, RecordSize: total - 4, Assembled: len(d.spill), Budget: d.budget.limit}
			d.reset()
			return err
		}
	}
	s := make([]byte, len(d.spill), grown)
	copy(s, d.spill)
	d.spill = s
	d.charged = int64(grown)
	return nil
}

// freeSpill empties spill after its record was handed out; a spill above
// spillKeep goes, with its budget, so that no channel keeps the capacity
// of its largest record.
func (d *deserializer) freeSpill() {
	if d.charged == 0 {
		d.spill = d.spill[:0]
		return
	}
	d.budget.release(d.charged)
	d.charged = 0
	d.spill = d.kept[:0]
}

func (d *deserializer) tooLarge(n int) error {
	d.reset()
	return fmt.Errorf("%w: record length %d exceeds MaxRecordSize %d (corrupt stream?)", ErrProtocol, n, d.maxRecord)
}

func (d *deserializer) releaseBuffer() {
	if !d.buf.IsZero() {
		d.buf.Release()
		d.buf = Buffer{}
		d.data = nil
		d.pos = 0
	}
}

// partial reports whether a record is half read (a truncated stream).
func (d *deserializer) partial() bool { return len(d.spill) > 0 && !d.spillDone }

// dropBuffer releases the current buffer, and the spill's budget, for a
// gate that is closing, while its Next may still be running its fast path
// (nextInBuffer): it touches buf and charged only, which the fast path
// never reads. The gate never reads this deserializer again.
func (d *deserializer) dropBuffer() {
	if !d.buf.IsZero() {
		d.buf.Release()
		d.buf = Buffer{}
	}
	d.budget.release(d.charged)
	d.charged = 0
}

// reset drops everything (channel released or failed), the spill's
// memory and budget included.
func (d *deserializer) reset() {
	d.releaseBuffer()
	d.budget.release(d.charged)
	d.charged = 0
	d.spill = nil
	d.kept = nil
	d.spillDone = false
}
