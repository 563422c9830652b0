package compress

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/pierrec/lz4/v4"
)

// Sentinel errors; every error of the package wraps one of them.
var (
	// ErrCorrupt: a compressed payload does not decode, or decodes to more
	// than the bound.
	ErrCorrupt = errors.New("compress: corrupt compressed buffer")
	// ErrInvalidConfig: a size is out of range.
	ErrInvalidConfig = errors.New("compress: invalid configuration")
)

// CorruptError describes a compressed payload that failed to decode.
type CorruptError struct {
	// Len is the length of the compressed payload.
	Len int
	// Bound is the most bytes the payload was allowed to decode to.
	Bound int
	// Err is the codec's error.
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("compress: corrupt LZ4 buffer (%d bytes compressed, at most %d allowed decompressed): %v", e.Len, e.Bound, e.Err)
}

// Unwrap returns ErrCorrupt and the codec's error.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// errEmpty is the cause for a zero-length compressed payload: the
// Compressor never produces one, so a peer that sends it is broken.
var errEmpty = errors.New("empty payload")

// Stats counts what a Compressor did. Safe to read from any goroutine.
type Stats struct {
	Compressed   int64 // buffers that shrank and were compressed
	Uncompressed int64 // buffers that did not shrink
	BytesIn      int64 // bytes offered to Compress
	BytesOut     int64 // bytes after compression (uncompressed buffers count as they are)
}

// Ratio is BytesIn / BytesOut (1 when nothing was offered).
func (s Stats) Ratio() float64 {
	if s.BytesOut == 0 {
		return 1
	}
	return float64(s.BytesIn) / float64(s.BytesOut)
}

// Compressor compresses buffers with LZ4 (block format). It keeps its hash
// table between calls, so it allocates nothing per buffer. The zero value
// is ready to use. Not safe for concurrent use; Stats may be read
// concurrently.
type Compressor struct {
	lz      lz4.Compressor
	scratch []byte // for CompressInPlace

	compressed, uncompressed atomic.Int64
	bytesIn, bytesOut        atomic.Int64
}

// NewCompressor returns a Compressor.
func NewCompressor() *Compressor { return new(Compressor) }

// Compress compresses src into dst (typically a pooled segment of the
// same size as src's). It returns n, true when the result is smaller than
// src: dst[:n] is the compressed payload. It returns 0, false when src
// did not shrink (random or already compressed data, or src empty): the
// caller sends src uncompressed, and dst holds garbage.
func (c *Compressor) Compress(dst, src []byte) (n int, ok bool) {
	c.bytesIn.Add(int64(len(src)))
	// Only a strictly smaller result is worth the flag; limiting dst to
	// len(src)-1 makes the codec give up as soon as it cannot shrink src,
	// which is also fastest for incompressible data.
	if limit := len(src) - 1; limit > 0 {
		if limit < len(dst) {
			dst = dst[:limit]
		}
		// An error only means "does not fit in dst", i.e. did not shrink.
		if n, err := c.lz.CompressBlock(src, dst); err == nil && n > 0 && n < len(src) {
			c.compressed.Add(1)
			c.bytesOut.Add(int64(n))
			return n, true
		}
	}
	c.uncompressed.Add(1)
	c.bytesOut.Add(int64(len(src)))
	return 0, false
}

// CompressInPlace compresses buf[:n] and, if it shrank, leaves the
// compressed bytes at the start of buf and returns their length and true;
// otherwise buf is unchanged and it returns 0, false. It goes through a
// scratch buffer of the Compressor (allocated once, at the first call, as
// large as the largest n seen), so the caller needs no second pooled
// buffer (Flink's compressToOriginalBuffer). Only for a buffer nobody else
// reads meanwhile: never a segment shared by a broadcast.
func (c *Compressor) CompressInPlace(buf []byte, n int) (int, bool) {
	if cap(c.scratch) < n {
		c.scratch = make([]byte, n)
	}
	m, ok := c.Compress(c.scratch[:n], buf[:n])
	if ok {
		copy(buf, c.scratch[:m])
	}
	return m, ok
}

// Stats returns the counters so far.
func (c *Compressor) Stats() Stats {
	return Stats{
		Compressed:   c.compressed.Load(),
		Uncompressed: c.uncompressed.Load(),
		BytesIn:      c.bytesIn.Load(),
		BytesOut:     c.bytesOut.Load(),
	}
}

// Decompressor decompresses LZ4 block payloads into caller-provided
// buffers, never writing more than MaxSize bytes. Decompress is safe for
// concurrent use; DecompressInPlace uses the Decompressor's scratch
// buffer, so a Decompressor that uses it belongs to one goroutine (a
// channel's or a connection's reader).
type Decompressor struct {
	maxSize int
	scratch []byte // for DecompressInPlace, MaxSize bytes once used
}

// NewDecompressor returns a Decompressor whose output is bounded by
// maxSize (the node's segment size: a buffer never decompresses to more
// than one segment). maxSize must be positive.
func NewDecompressor(maxSize int) (*Decompressor, error) {
	if maxSize <= 0 {
		return nil, fmt.Errorf("%w: maxSize = %d: must be positive", ErrInvalidConfig, maxSize)
	}
	return &Decompressor{maxSize: maxSize}, nil
}

// MaxSize is the bound given to NewDecompressor.
func (d *Decompressor) MaxSize() int { return d.maxSize }

// Decompress decodes src into dst and returns the decoded length. It
// writes at most min(len(dst), MaxSize) bytes. A payload that is empty,
// does not decode, or would decode to more than that bound is a
// *CorruptError; dst's contents are then undefined.
func (d *Decompressor) Decompress(dst, src []byte) (int, error) {
	bound := min(len(dst), d.maxSize)
	if len(src) == 0 {
		return 0, &CorruptError{Len: 0, Bound: bound, Err: errEmpty}
	}
	n, err := lz4.UncompressBlock(src, dst[:bound])
	if err != nil {
		return 0, &CorruptError{Len: len(src), Bound: bound, Err: err}
	}
	return n, nil
}

// DecompressInPlace decodes the compressed payload buf[:n] and leaves the
// result at the start of buf, returning its length, at most
// min(len(buf), MaxSize). It decodes into the Decompressor's scratch
// buffer (allocated once, MaxSize bytes) and copies back, so the pooled
// segment that received the payload keeps the data and decompression
// never waits for a second buffer (Flink's decompressToOriginalBuffer
// idea). On error buf's contents are undefined.
func (d *Decompressor) DecompressInPlace(buf []byte, n int) (int, error) {
	if d.scratch == nil {
		d.scratch = make([]byte, d.maxSize)
	}
	m, err := d.Decompress(d.scratch[:min(len(buf), d.maxSize)], buf[:n])
	if err != nil {
		return 0, err
	}
	return copy(buf, d.scratch[:m]), nil
}
