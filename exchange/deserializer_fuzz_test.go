package exchange

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// releaseCounter is the owner of the fuzz test's segments: it counts
// releases and overwrites a released segment, so a record that still
// aliases a released buffer shows up as corrupt data.
type releaseCounter struct{ released int }

func (c *releaseCounter) recycle(s *segment) {
	c.released++
	for i := range s.data {
		s.data[i] = 0xEE
	}
}

// refParse is the reference: the complete records of stream, whether it
// ends inside a record, and the index of the first record whose length
// exceeds maxRecord (-1 if none); parsing stops there.
func refParse(stream []byte, maxRecord int) (recs [][]byte, partial bool, tooLarge int) {
	pos := 0
	for pos < len(stream) {
		if len(stream)-pos < 4 {
			return recs, true, -1
		}
		n := int(binary.BigEndian.Uint32(stream[pos:]))
		if n > maxRecord {
			return recs, false, len(recs)
		}
		if len(stream)-pos-4 < n {
			return recs, true, -1
		}
		recs = append(recs, stream[pos+4:pos+4+n])
		pos += 4 + n
	}
	return recs, false, -1
}

// encodeRecords length-prefixes records, as the RecordWriter does.
func encodeRecords(recs ...[]byte) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

// refSpill is the reference for the spill budget: the index of the first
// record that spans buffers (ends[i] is where buffer i ends in stream) and
// needs more than max(spillKeep, budget) bytes assembled, counting only the
// bytes the stream holds (a truncated record grows only as far as its
// bytes), or -1. Records past the first too-large one are not looked at.
func refSpill(stream []byte, ends []int, maxRecord int, budget int64) int {
	pos, idx := 0, 0
	for b := 0; pos < len(stream); idx++ {
		for ends[b] <= pos {
			b++
		}
		total := len(stream) - pos // what arrives of a truncated record
		full := total              // its length, once the prefix is known
		if len(stream)-pos >= 4 {
			n := int(binary.BigEndian.Uint32(stream[pos:]))
			if n > maxRecord {
				return -1
			}
			full = 4 + n
			total = min(total, full)
		}
		// A record that does not end in its first buffer is assembled in
		// the spill, a truncated one too (the deserializer cannot know
		// that no more bytes come), from every byte that arrived.
		if pos+full > ends[b] && total > spillKeep && int64(total) > budget {
			return idx
		}
		pos += total
	}
	return -1
}

// FuzzDeserializer feeds a byte stream, cut into buffers at fuzzed
// points, to the deserializer and checks it against refParse and
// refSpill: the same records in order; a typed error (ErrProtocol, never
// a panic) for a length above maxRecord; a *SpanningRecordMemoryError
// exactly for the first spanning record that needs more than the fuzzed
// budget (0: unlimited) and the per-channel allowance; partial() exactly
// when the stream stops inside a record; every buffer released exactly
// once; a spill that grows with the bytes that arrived (at most twice
// them), never past the largest allowed record, whose budget is the
// deserializer's charge and is all returned once no record is half read.
// The stream's lengths are peer-supplied: the fuzzer writes any value, up
// to and beyond maxRecord (and beyond the default MaxRecordSize).
func FuzzDeserializer(f *testing.F) {
	rec := func(n int) []byte { return bytes.Repeat([]byte{byte(n)}, n) }
	f.Add(encodeRecords(rec(3), rec(0), rec(40)), []byte{0, 6, 2}, uint16(64), uint16(0))
	f.Add(encodeRecords(rec(200), rec(1)), []byte{1}, uint16(300), uint16(0))                    // spans many 2-byte buffers
	f.Add(encodeRecords(rec(10)), []byte{0, 0, 0, 0}, uint16(10), uint16(0))                     // length prefix split byte by byte
	f.Add(encodeRecords(rec(10), rec(11)), []byte{13, 20}, uint16(10), uint16(0))                // second record too large
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, []byte{1, 1}, uint16(1000), uint16(0))        // length beyond any maximum
	f.Add([]byte{0x01, 0x00, 0x00, 0x00, 1, 2, 3}, []byte{}, uint16(65535), uint16(0))           // 16 MiB claimed, 3 bytes sent
	f.Add(append(encodeRecords(rec(5)), 0, 0), []byte{8}, uint16(100), uint16(0))                // stops inside a prefix
	f.Add(encodeRecords(rec(100), rec(100), rec(100)), []byte{103, 103}, uint16(100), uint16(0)) // records flush with buffers
	big := encodeRecords(rec(10000), rec(20), rec(9000))
	f.Add(big, []byte{255}, uint16(10000), uint16(10004))                 // both fit the budget, one after the other
	f.Add(big, []byte{255}, uint16(10000), uint16(9500))                  // the first record needs more than the budget
	f.Add(big[:6000], []byte{255}, uint16(10000), uint16(5000))           // truncated: fails once its bytes pass the budget
	f.Add(big[:4500], []byte{255}, uint16(10000), uint16(4200))           // truncated below the budget: partial, no error
	f.Add(encodeRecords(rec(3000)), []byte{200}, uint16(4000), uint16(1)) // within the allowance: no budget needed
	f.Fuzz(func(t *testing.T, stream, cuts []byte, maxLen, budgetBytes uint16) {
		if len(stream) > 1<<16 {
			return
		}
		maxRecord := int(maxLen)
		budget := &spanBudget{limit: int64(budgetBytes)}
		if budgetBytes == 0 {
			budget.limit = math.MaxInt64
		}
		var ends []int
		for pos, k := 0, 0; pos < len(stream); k++ {
			n := len(stream) - pos
			if len(cuts) > 0 {
				n = min(n, int(cuts[k%len(cuts)])+1)
			}
			pos += n
			ends = append(ends, pos)
		}
		want, wantPartial, tooLarge := refParse(stream, maxRecord)
		noRoom := refSpill(stream, ends, maxRecord, budget.limit)
		if noRoom >= 0 && (tooLarge < 0 || noRoom < tooLarge) {
			tooLarge = -1
			want = want[:min(len(want), noRoom)]
		} else {
			noRoom = -1
		}

		owner := &releaseCounter{}
		data := bytes.Clone(stream) // one copy, cut into the buffers
		d := deserializer{maxRecord: maxRecord, budget: budget, peer: "fuzz:1"}
		given, got, pos := 0, 0, 0
		var failed error
		for _, end := range ends {
			if failed != nil {
				break
			}
			// Buffers are never empty: the gate drops empty data buffers
			// (returned credit) before the deserializer sees them.
			s := &segment{data: data[pos:end:end], owner: owner}
			s.refs.Store(1)
			d.setBuffer(bufferOf(s, 0, end-pos, 0))
			pos = end
			given++
			for {
				rec, ok, err := d.next()
				if err != nil {
					failed = err
					break
				}
				if !ok {
					break
				}
				if got >= len(want) || !bytes.Equal(rec, want[got]) {
					t.Fatalf("record %d: got %d bytes %x, want %x (reference has %d records)", got, len(rec), head(rec), head(at(want, got)), len(want))
				}
				got++
			}
			if failed == nil && owner.released != given {
				t.Fatalf("after buffer %d was exhausted: %d releases, want %d", given, owner.released, given)
			}
			if c := cap(d.spill); c > max(spillKeep, 4+maxRecord) {
				t.Fatalf("spill capacity %d for records of at most %d bytes", c, maxRecord)
			}
			if used := budget.inUse(); used != d.charged || used > budget.limit {
				t.Fatalf("budget in use %d, deserializer charged %d, limit %d", used, d.charged, budget.limit)
			}
			if d.charged > 0 && d.charged > 2*int64(len(d.spill)) {
				t.Fatalf("spill capacity %d charged for %d bytes that arrived: it must grow with them", d.charged, len(d.spill))
			}
			if !d.partial() && budget.inUse() != 0 {
				t.Fatalf("no record half read, %d bytes of budget still held", budget.inUse())
			}
		}
		var memErr *SpanningRecordMemoryError
		switch {
		case tooLarge >= 0 && failed == nil:
			t.Fatalf("record %d claims more than %d bytes; no error", tooLarge, maxRecord)
		case noRoom >= 0 && !errors.As(failed, &memErr):
			t.Fatalf("record %d needs more than the budget %d; got %v, want a *SpanningRecordMemoryError", noRoom, budget.limit, failed)
		case noRoom >= 0 && (memErr.Peer != "fuzz:1" || !errors.Is(failed, ErrSpanningRecordMemory)):
			t.Fatalf("%v: does not name the peer or wrap ErrSpanningRecordMemory", failed)
		case tooLarge < 0 && noRoom < 0 && failed != nil:
			t.Fatalf("unexpected error after %d records: %v", got, failed)
		case tooLarge >= 0 && !errors.Is(failed, ErrProtocol):
			t.Fatalf("error %v does not wrap ErrProtocol", failed)
		case failed != nil && got != len(want):
			t.Fatalf("error after %d records, want after %d", got, len(want))
		case failed == nil && got != len(want):
			t.Fatalf("%d records, want %d", got, len(want))
		case failed == nil && d.partial() != wantPartial:
			t.Fatalf("partial() = %v, want %v", d.partial(), wantPartial)
		}
		d.reset()
		if owner.released != given {
			t.Fatalf("%d buffers given, %d released", given, owner.released)
		}
		if d.partial() || d.hasBuffer() || budget.inUse() != 0 {
			t.Fatalf("reset left state behind (budget in use %d)", budget.inUse())
		}
	})
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

func at(recs [][]byte, i int) []byte {
	if i < len(recs) {
		return recs[i]
	}
	return nil
}
