package exchange

import (
	"fmt"
	"sync/atomic"

	"github.com/qexchange/qexchange/exchange/compress"
)

// Compression selects how a partition's data buffers travel (Flink's
// taskmanager.network.compression.codec): compressed per buffer with LZ4
// in the block format (package compress), flagged in the BufferResponse,
// and sent as they are when they do not shrink. Events are never
// compressed, and local channels always read plain records.
type Compression uint8

const (
	// CompressionDefault is LZ4 for BLOCKING partitions (compressed once,
	// when spilled, however often read) and none for pipelined ones.
	CompressionDefault Compression = iota
	// CompressionNone sends every buffer as it is.
	CompressionNone
	// CompressionLZ4 compresses data buffers with LZ4.
	CompressionLZ4
)

func (c Compression) String() string {
	switch c {
	case CompressionDefault:
		return "default"
	case CompressionNone:
		return "none"
	case CompressionLZ4:
		return "lz4"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// resolve is the codec a partition of type t uses.
func (c Compression) resolve(t PartitionType) Compression {
	if c == CompressionDefault {
		if t == Blocking {
			return CompressionLZ4
		}
		return CompressionNone
	}
	return c
}

// compressOwned compresses a data buffer in place for the network, when
// it shrinks. Only for a buffer no other reader sees (never a broadcast
// segment). The Compressors (136 KiB of hash table each) come from a
// pool so that the transports' writer goroutines share a few of them.
func (p *ResultPartition) compressOwned(b Buffer) Buffer {
	c, _ := p.compressors.Get().(*compress.Compressor)
	if c == nil {
		c = compress.NewCompressor()
	}
	in := b.Len()
	n, ok := c.CompressInPlace(b.Bytes(), in)
	p.compressors.Put(c)
	p.compStats.count(in, n, ok)
	if ok {
		b.n = int32(n)
		b.Compressed = true
	}
	return b
}

// spillPayload is the payload to spill for a finished data segment:
// compressed into the partition's scratch when that shrinks it (wmu
// held: the writer's Compressor and scratch are its own).
func (p *ResultPartition) spillPayload(data []byte) ([]byte, bool) {
	if p.compression != CompressionLZ4 {
		return data, false
	}
	if p.spillCompressor == nil {
		p.spillCompressor = compress.NewCompressor()
		p.spillScratch = make([]byte, len(data))
	}
	if len(p.spillScratch) < len(data) {
		p.spillScratch = make([]byte, len(data))
	}
	n, ok := p.spillCompressor.Compress(p.spillScratch, data)
	p.compStats.count(len(data), n, ok)
	if ok {
		return p.spillScratch[:n], true
	}
	return data, false
}

// Room is the writable part of b's segment from b's start: where a
// consumer decompresses a payload it received into b (in place).
func (b Buffer) Room() []byte {
	if b.seg == nil {
		return nil
	}
	return b.seg.data[b.off:]
}

// WithLen returns b covering its first n bytes of Room (after an in-place
// decompression). n must be within Room.
func (b Buffer) WithLen(n int) Buffer {
	if n < 0 || b.seg == nil || int(b.off)+n > len(b.seg.data) {
		panic(fmt.Sprintf("exchange: WithLen(%d) outside the buffer's segment", n))
	}
	b.n = int32(n)
	b.Compressed = false
	return b
}

// decompressLocked turns a compressed buffer read from the spill file
// into plain records in the same segment, for a local reader (s.mu
// held).
func (s *subpartition) decompressLocked(b Buffer) (Buffer, error) {
	sr := s.spill
	if sr.dec == nil {
		d, err := compress.NewDecompressor(len(b.seg.data))
		if err != nil {
			return b, err
		}
		sr.dec = d
	}
	n, err := sr.dec.DecompressInPlace(b.Room(), b.Len())
	if err != nil {
		return b, err
	}
	return b.WithLen(n), nil
}

// SendsOverNetwork marks s as read by a view (a transport), which sends
// compressed buffers as they are; local readers get plain records.
func (s *subpartition) sendsOverNetwork() {
	s.mu.Lock()
	s.network = true
	s.mu.Unlock()
}

// forReader is what a pipelined subpartition hands its reader: a data
// buffer compressed in place for a view of a partition with compression,
// unless other subpartitions read the same bytes (broadcast).
func (s *subpartition) forReader(b Buffer, shared bool) Buffer {
	if !s.network || shared || s.part.compression != CompressionLZ4 {
		return b
	}
	return s.part.compressOwned(b)
}

// CompressionStats counts what compression did to a partition's data
// buffers: for a BLOCKING partition once, when spilled; for a pipelined
// one per buffer sent over the network.
type CompressionStats struct {
	Buffers    int64 // data buffers offered to the compressor
	Compressed int64 // of them, sent or stored compressed (they shrank)
	BytesIn    int64 // their size before
	BytesOut   int64 // their size as sent or stored
}

// Ratio is BytesIn / BytesOut (1 when nothing was offered).
func (s CompressionStats) Ratio() float64 {
	if s.BytesOut == 0 {
		return 1
	}
	return float64(s.BytesIn) / float64(s.BytesOut)
}

type compressionCounters struct {
	buffers, compressed, in, out atomic.Int64
}

func (c *compressionCounters) count(in, n int, ok bool) {
	c.buffers.Add(1)
	c.in.Add(int64(in))
	if ok {
		c.compressed.Add(1)
		c.out.Add(int64(n))
	} else {
		c.out.Add(int64(in))
	}
}

// CompressionStats returns the partition's compression counters so far.
func (p *ResultPartition) CompressionStats() CompressionStats {
	c := &p.compStats
	return CompressionStats{Buffers: c.buffers.Load(), Compressed: c.compressed.Load(), BytesIn: c.in.Load(), BytesOut: c.out.Load()}
}

// Compression is the codec the partition uses (CompressionDefault
// resolved for its type).
func (p *ResultPartition) Compression() Compression { return p.compression }
