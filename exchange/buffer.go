package exchange

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/qexchange/qexchange/exchange/wire"
)

// segment is one fixed-size piece of network memory. Segments are created
// once by the NetworkBufferPool and reused; events use unpooled segments.
type segment struct {
	data []byte
	refs atomic.Int32
	// owner takes the segment back when its last reference is released;
	// nil for unpooled segments.
	owner recycler

	// Writer side (Flink's BufferBuilder). pos is where the writer has
	// written to; it belongs to the writer, and others read it only with
	// the writer kept out (ResultPartition.lockWriter), so appending a
	// record costs no atomic operation. written is the part published to
	// readers: the writer copies pos into it when the segment is full or
	// finished, and a flush does when it asks for it (docs/architecture.md,
	// "Flushing"). finished is stored after the final written, so a
	// reader that sees finished also sees the final length.
	pos      int32
	written  atomic.Int32
	finished atomic.Bool
	// limit is where the writer treats the segment as full: len(data), or
	// less for a subpartition whose consumer announced a debloated buffer
	// size (docs/architecture.md, "Buffer debloating"). Writer side.
	limit int32
}

// fits reports where record and its length would end in s, and whether
// that leaves s not full (the locked path finishes full segments). The
// len(s.data) test is implied by limit; it lets the compiler drop
// putRecord's bounds checks.
func (s *segment) fits(record []byte) (end int, ok bool) {
	end = int(s.pos) + 4 + len(record)
	return end, end < int(s.limit) && end <= len(s.data)
}

// putRecord appends record with its length, which fits (s.fits) and ends
// at end. Writer side, in the gate; inlined, with no call for the
// commonest small record.
func (s *segment) putRecord(end int, record []byte) {
	d := s.data[s.pos:end]
	binary.BigEndian.PutUint32(d, uint32(len(record)))
	if len(record) == 8 {
		// A long: one move, where copy would call memmove and spill the
		// caller's registers.
		binary.LittleEndian.PutUint64(d[4:], binary.LittleEndian.Uint64(record))
	} else {
		copy(d[4:], record)
	}
	s.pos = int32(end)
}

// publish makes everything the writer put into s readable (by the
// writer, or with it kept out).
func (s *segment) publish() {
	if s != nil && s.written.Load() != s.pos {
		s.written.Store(s.pos)
	}
}

// recycler takes back segments whose last reference was released.
type recycler interface {
	recycle(*segment)
}

// Buffer is a view of part of a network segment: what moves through
// subpartitions, transports and input channels. It is a small value;
// copying it does not add a reference. Every Buffer obtained from this
// package must be released exactly once (or passed on to something that
// releases it); Retain adds a reference for a second holder.
type Buffer struct {
	seg      *segment
	off, n   int32
	DataType wire.DataType
	// Compressed: the bytes are an LZ4 block (package compress), sent
	// with the BufferResponse's compressed flag (compression.go).
	Compressed bool
}

// Bytes returns the buffer's readable bytes. For a buffer from
// ChannelHandler.RequestBuffer, it is the slice to read the payload into.
func (b Buffer) Bytes() []byte {
	if b.seg == nil {
		return nil
	}
	return b.seg.data[b.off : b.off+b.n]
}

// Len is the number of readable bytes.
func (b Buffer) Len() int { return int(b.n) }

// IsZero reports whether b holds no segment.
func (b Buffer) IsZero() bool { return b.seg == nil }

// Retain adds a reference and returns b.
func (b Buffer) Retain() Buffer {
	if b.seg != nil {
		b.seg.refs.Add(1)
	}
	return b
}

// Release drops a reference; the last one returns the segment to its pool.
func (b Buffer) Release() {
	s := b.seg
	if s == nil {
		return
	}
	switch r := s.refs.Add(-1); {
	case r == 0:
		if s.owner != nil {
			s.owner.recycle(s)
		}
	case r < 0:
		// A double release is a bug in this module, not bad input; going
		// on would hand one segment to two writers and corrupt data.
		panic("exchange: buffer released more often than retained")
	}
}

// NewUnpooledBuffer wraps data (events, tests) in a buffer that belongs to
// no pool.
func NewUnpooledBuffer(data []byte, dataType wire.DataType) Buffer {
	s := &segment{data: data}
	s.refs.Store(1)
	return Buffer{seg: s, n: int32(len(data)), DataType: dataType}
}

// bufferOf returns a buffer over s[off:off+n] without touching references.
func bufferOf(s *segment, off, n int, dt wire.DataType) Buffer {
	return Buffer{seg: s, off: int32(off), n: int32(n), DataType: dt}
}
