package exchange

import (
	"encoding/binary"
	"fmt"
)

// deserializer splits a channel's buffers back into length-prefixed
// records (Flink's SpillingAdaptiveSpanningRecordDeserializer). Records
// that lie wholly inside a buffer are returned as slices of it (no copy);
// records that span buffers are assembled in a reused spill slice.
type deserializer struct {
	buf  Buffer
	data []byte
	pos  int

	spill     []byte // partial record: 4-byte length, then payload
	spillDone bool   // spill holds a record handed out; reset on next call
	maxRecord int
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
		d.spill = d.spill[:0]
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
	d.spill = append(d.spill, d.data[d.pos:d.pos+take]...)
	d.pos += take
	if take < need {
		return nil, false, nil
	}
	d.spillDone = true
	return d.spill[4:], true, nil
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

// dropBuffer releases the current buffer for a gate that is closing,
// while its Next may still be running its fast path (nextInBuffer): it
// touches buf only. The gate never reads this deserializer again.
func (d *deserializer) dropBuffer() {
	if !d.buf.IsZero() {
		d.buf.Release()
		d.buf = Buffer{}
	}
}

// reset drops everything (channel released).
func (d *deserializer) reset() {
	d.releaseBuffer()
	d.spill = nil
	d.spillDone = false
}
