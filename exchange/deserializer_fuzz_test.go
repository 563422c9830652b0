package exchange

import (
	"bytes"
	"encoding/binary"
	"errors"
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

// FuzzDeserializer feeds a byte stream, cut into buffers at fuzzed
// points, to the deserializer and checks it against refParse: the same
// records in order, a typed error (ErrProtocol, never a panic) for a
// length above maxRecord, partial() exactly when the stream stops inside
// a record, every buffer released exactly once, and a spill buffer that
// never grows past what the largest allowed record needs. The stream's
// lengths are peer-supplied: the fuzzer writes any value, up to and
// beyond maxRecord (and beyond the default MaxRecordSize).
func FuzzDeserializer(f *testing.F) {
	rec := func(n int) []byte { return bytes.Repeat([]byte{byte(n)}, n) }
	f.Add(encodeRecords(rec(3), rec(0), rec(40)), []byte{0, 6, 2}, uint16(64))
	f.Add(encodeRecords(rec(200), rec(1)), []byte{1}, uint16(300))                    // spans many 2-byte buffers
	f.Add(encodeRecords(rec(10)), []byte{0, 0, 0, 0}, uint16(10))                     // length prefix split byte by byte
	f.Add(encodeRecords(rec(10), rec(11)), []byte{13, 20}, uint16(10))                // second record too large
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, []byte{1, 1}, uint16(1000))        // length beyond any maximum
	f.Add([]byte{0x01, 0x00, 0x00, 0x00, 1, 2, 3}, []byte{}, uint16(65535))           // 16 MiB claimed, 3 bytes sent
	f.Add(append(encodeRecords(rec(5)), 0, 0), []byte{8}, uint16(100))                // stops inside a prefix
	f.Add(encodeRecords(rec(100), rec(100), rec(100)), []byte{103, 103}, uint16(100)) // records flush with buffers
	f.Fuzz(func(t *testing.T, stream, cuts []byte, max uint16) {
		if len(stream) > 1<<16 {
			return
		}
		maxRecord := int(max)
		want, wantPartial, tooLarge := refParse(stream, maxRecord)

		owner := &releaseCounter{}
		d := deserializer{maxRecord: maxRecord}
		given, got := 0, 0
		var failed error
		for pos, k := 0, 0; pos < len(stream) && failed == nil; k++ {
			n := len(stream) - pos
			if len(cuts) > 0 {
				n = min(n, int(cuts[k%len(cuts)])+1)
			}
			// Buffers are never empty: the gate drops empty data buffers
			// (returned credit) before the deserializer sees them.
			s := &segment{data: bytes.Clone(stream[pos : pos+n]), owner: owner}
			s.refs.Store(1)
			pos += n
			d.setBuffer(bufferOf(s, 0, n, 0))
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
			if c := cap(d.spill); c > 2*(4+maxRecord)+64 {
				t.Fatalf("spill capacity %d for records of at most %d bytes", c, maxRecord)
			}
		}
		switch {
		case tooLarge >= 0 && failed == nil:
			t.Fatalf("record %d claims more than %d bytes; no error", tooLarge, maxRecord)
		case tooLarge < 0 && failed != nil:
			t.Fatalf("unexpected error after %d records: %v", got, failed)
		case failed != nil && !errors.Is(failed, ErrProtocol):
			t.Fatalf("error %v does not wrap ErrProtocol", failed)
		case failed != nil && got != tooLarge:
			t.Fatalf("error after %d records, want after %d", got, tooLarge)
		case failed == nil && got != len(want):
			t.Fatalf("%d records, want %d", got, len(want))
		case failed == nil && d.partial() != wantPartial:
			t.Fatalf("partial() = %v, want %v", d.partial(), wantPartial)
		}
		d.reset()
		if owner.released != given {
			t.Fatalf("%d buffers given, %d released", given, owner.released)
		}
		if d.partial() || d.hasBuffer() {
			t.Fatal("reset left state behind")
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
