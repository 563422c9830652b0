package spill

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Partition is a finished blocking partition on disk. It is immutable:
// any number of Readers, concurrently or one after another, each read one
// subpartition from its start. Safe for concurrent use.
type Partition struct {
	m        *Manager
	path     string
	f        *os.File
	subs     []index
	size     int64
	released atomic.Bool
}

// Path is the partition's data file.
func (p *Partition) Path() string { return p.path }

// Size is the file's size in bytes (headers included).
func (p *Partition) Size() int64 { return p.size }

// Subpartitions is the number of subpartitions.
func (p *Partition) Subpartitions() int { return len(p.subs) }

// Buffers is the number of buffers spilled for subpartition sub (0 when
// sub is out of range).
func (p *Partition) Buffers(sub int) int {
	if sub < 0 || sub >= len(p.subs) {
		return 0
	}
	return p.subs[sub].n
}

// NewReader returns a reader of subpartition sub positioned at its first
// buffer. Readers are independent: a consumer that failed mid-read is
// served again by a new reader from the start.
func (p *Partition) NewReader(sub int) (*Reader, error) {
	if p.released.Load() {
		return nil, p.releasedError()
	}
	if sub < 0 || sub >= len(p.subs) {
		return nil, fmt.Errorf("%w: subpartition %d of %d", ErrInvalidArgument, sub, len(p.subs))
	}
	return &Reader{p: p, sub: sub, idx: &p.subs[sub]}, nil
}

// Release deletes the partition's file. Readers fail with ErrReleased
// from then on (a read in progress completes or fails with it).
// Idempotent.
func (p *Partition) Release() error {
	if p.released.Swap(true) {
		return nil
	}
	p.m.unregister(p)
	// Closing while a reader is in ReadAt is safe: the file descriptor is
	// closed when the read returns.
	p.f.Close()
	if err := os.Remove(p.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return &IOError{Op: "remove file", Dir: p.m.cfg.Dir, Path: p.path, Err: err}
	}
	return nil
}

func (p *Partition) discard() error { return p.Release() }

func (p *Partition) releasedError() error {
	return fmt.Errorf("%w: %s", ErrReleased, p.path)
}

// Reader reads one subpartition's buffers in order into caller-provided
// buffers (pooled network segments): two positioned reads per buffer, its
// 16-byte header and then the payload straight into the destination, so
// nothing is copied and the reader's own memory is its header. Not safe
// for concurrent use; use one Reader per consumer.
type Reader struct {
	p      *Partition
	sub    int
	idx    *index
	pos    int
	events int // events among the first pos buffers
	closed bool
	hdr    [headerSize]byte
	sum    xxhash.Digest
}

// Remaining is the number of buffers (data and events) not yet read.
func (r *Reader) Remaining() int { return r.idx.n - r.pos }

// Backlog is the number of data buffers not yet read: the backlog a view
// announces, counted as Flink counts it (events excluded).
func (r *Reader) Backlog() int { return (r.idx.n - r.idx.events) - (r.pos - r.events) }

// Peek describes the next buffer without reading it: its payload size
// and whether it is an event (a view sends events without credit). ok is
// false at the end.
func (r *Reader) Peek() (size int, isEvent, ok bool) {
	if r.pos >= r.idx.n {
		return 0, false, false
	}
	_, isEvent, size = unpackEntry(r.idx.at(r.pos))
	return size, isEvent, true
}

// Next reads the next buffer into dst and returns its length and meta.
// It returns io.EOF after the last buffer, ErrInvalidArgument (without
// advancing) if dst is shorter than the size Peek reports, ErrReleased once the
// partition is released, and a *CorruptError if the file does not hold
// what was written.
func (r *Reader) Next(dst []byte) (int, Meta, error) {
	if r.closed {
		return 0, Meta{}, ErrClosed
	}
	if r.p.released.Load() {
		return 0, Meta{}, r.p.releasedError()
	}
	if r.pos >= r.idx.n {
		return 0, Meta{}, io.EOF
	}
	off, isEvent, n := unpackEntry(r.idx.at(r.pos))
	if len(dst) < n {
		return 0, Meta{}, fmt.Errorf("%w: buffer of %d bytes into %d", ErrInvalidArgument, n, len(dst))
	}
	if err := r.readAt(r.hdr[:], off); err != nil {
		return 0, Meta{}, err
	}
	payload := dst[:n]
	if err := r.readAt(payload, off+headerSize); err != nil {
		return 0, Meta{}, err
	}
	meta, err := r.check(off, payload)
	if err == nil && meta.DataType.IsEvent() != isEvent {
		err = &CorruptError{Path: r.p.path, Offset: off, Reason: "event flag differs from the index"}
	}
	if err != nil {
		return 0, Meta{}, err
	}
	r.pos++
	if isEvent {
		r.events++
	}
	return n, meta, nil
}

func (r *Reader) readAt(b []byte, off int64) error {
	if _, err := r.p.f.ReadAt(b, off); err != nil {
		if r.p.released.Load() || errors.Is(err, os.ErrClosed) {
			return r.p.releasedError()
		}
		if errors.Is(err, io.EOF) {
			return &CorruptError{Path: r.p.path, Offset: off, Reason: "file ends inside a buffer"}
		}
		return &IOError{Op: "read", Dir: r.p.m.cfg.Dir, Path: r.p.path, Err: err}
	}
	return nil
}

func (r *Reader) check(off int64, payload []byte) (Meta, error) {
	h := r.hdr[:]
	corrupt := func(reason string, args ...any) error {
		return &CorruptError{Path: r.p.path, Offset: off, Reason: fmt.Sprintf(reason, args...)}
	}
	if sub := binary.BigEndian.Uint32(h[0:]); sub != uint32(r.sub) {
		return Meta{}, corrupt("subpartition %d, index says %d", sub, r.sub)
	}
	if n := binary.BigEndian.Uint32(h[4:]); n != uint32(len(payload)) {
		return Meta{}, corrupt("length %d, index says %d", n, len(payload))
	}
	meta := Meta{DataType: wire.DataType(h[8]), Compressed: h[9]&flagCompressed != 0}
	if !meta.DataType.Valid() || h[9]&^flagCompressed != 0 || h[10] != 0 || h[11] != 0 {
		return Meta{}, corrupt("bad data type or flags % x", h[8:12])
	}
	if sum := checksum(&r.sum, h, payload); sum != binary.BigEndian.Uint32(h[12:]) {
		return Meta{}, corrupt("checksum %08x, header says %08x", sum, binary.BigEndian.Uint32(h[12:]))
	}
	return meta, nil
}

// Close ends the reader; Next returns ErrClosed afterwards. The partition
// stays readable by other readers.
func (r *Reader) Close() error {
	r.closed = true
	return nil
}
