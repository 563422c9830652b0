package spill

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/qexchange/qexchange/exchange/wire"
)

// headerSize is the on-disk header before every buffer, big endian:
//
//	subpartition u32 | length u32 | dataType u8 | flags u8 | zero u16 | checksum u32
//
// The checksum is the low 32 bits of the xxhash64 of the first 12 header
// bytes and the payload, so a reader detects a damaged or foreign file
// (data or meta) instead of sending garbage.
const headerSize = 16

const flagCompressed = 1

// Meta is what a spilled buffer carries besides its bytes.
type Meta struct {
	DataType   wire.DataType
	Compressed bool // the payload is LZ4-compressed (package compress)
}

// checksum covers the header's first 12 bytes and the payload; d is the
// caller's, so that summing allocates nothing.
func checksum(d *xxhash.Digest, h, payload []byte) uint32 {
	d.Reset()
	d.Write(h[:12])
	d.Write(payload)
	return uint32(d.Sum64())
}

func putHeader(d *xxhash.Digest, h []byte, sub uint32, payload []byte, meta Meta) {
	binary.BigEndian.PutUint32(h[0:], sub)
	binary.BigEndian.PutUint32(h[4:], uint32(len(payload)))
	h[8] = byte(meta.DataType)
	h[9] = 0
	if meta.Compressed {
		h[9] = flagCompressed
	}
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint32(h[12:], checksum(d, h, payload))
}

// Writer appends the buffers of one blocking partition's subpartitions to
// its file, in the order they come, through a write buffer of
// Config.WriteBufferSize bytes: the producer's memory stays bounded by
// that, not by the data size. It is meant for one producer goroutine; a
// mutex only lets Manager.Close discard it safely meanwhile.
//
// Any write error (a full disk: ErrDiskFull) fails the writer for good:
// the partial file is removed at once and every later call returns the
// same error.
type Writer struct {
	mu   sync.Mutex
	m    *Manager
	path string
	f    *os.File
	subs []index
	buf  []byte
	size int64 // offset of the next buffer (written + buffered)
	sum  xxhash.Digest
	err  error // sticky: failed, finished or discarded
}

// Path is the partition's data file.
func (w *Writer) Path() string { return w.path }

// Append spills one buffer of subpartition sub. The payload is copied
// (into the write buffer, or written at once when larger than it), so the
// caller may release its network buffer as soon as Append returns.
func (w *Writer) Append(sub int, meta Meta, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if sub < 0 || sub >= len(w.subs) {
		return fmt.Errorf("%w: subpartition %d of %d", ErrInvalidArgument, sub, len(w.subs))
	}
	if !meta.DataType.Valid() {
		return fmt.Errorf("%w: data type %v", ErrInvalidArgument, meta.DataType)
	}
	if len(payload) > MaxBufferSize {
		return fmt.Errorf("%w: buffer of %d bytes, at most %d", ErrTooLarge, len(payload), MaxBufferSize)
	}
	need := headerSize + len(payload)
	if w.size+int64(need) > MaxFileSize {
		return w.fail(fmt.Errorf("%w: partition file %s would exceed %d bytes", ErrTooLarge, w.path, int64(MaxFileSize)))
	}
	if len(w.buf)+need > cap(w.buf) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if need <= cap(w.buf) {
		n := len(w.buf)
		w.buf = w.buf[:n+headerSize]
		putHeader(&w.sum, w.buf[n:], uint32(sub), payload, meta)
		w.buf = append(w.buf, payload...)
	} else {
		// Larger than the write buffer (which flush emptied): write it
		// directly.
		var hdr [headerSize]byte
		putHeader(&w.sum, hdr[:], uint32(sub), payload, meta)
		if err := w.write(hdr[:]); err != nil {
			return err
		}
		if err := w.write(payload); err != nil {
			return err
		}
	}
	w.subs[sub].add(packEntry(w.size, meta.DataType.IsEvent(), len(payload)))
	w.size += int64(need)
	return nil
}

// Size is the number of bytes spilled so far (headers included).
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

func (w *Writer) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.write(w.buf)
	w.buf = w.buf[:0]
	return err
}

func (w *Writer) write(b []byte) error {
	n, err := w.f.Write(b)
	w.m.written.Add(int64(n))
	if err != nil {
		return w.fail(&IOError{Op: "write", Dir: w.m.cfg.Dir, Path: w.path, Err: err})
	}
	return nil
}

// fail makes err sticky and removes the partial file.
func (w *Writer) fail(err error) error {
	w.err = err
	w.removeFile()
	w.m.log.Warn().Err(err).Str("file", w.path).Msg("spill: partition writer failed; partial file removed")
	return err
}

func (w *Writer) removeFile() {
	w.buf = nil
	w.subs = nil
	if w.f != nil {
		w.f.Close()
		w.f = nil
		if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			w.m.log.Warn().Err(err).Str("file", w.path).Msg("spill: cannot remove a partition file")
		}
	}
	w.m.unregister(w)
}

// Finish writes what is buffered (and fsyncs with Config.Sync) and
// returns the readable partition. The writer is done afterwards.
func (w *Writer) Finish() (*Partition, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, w.err
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	if w.m.cfg.Sync {
		if err := w.f.Sync(); err != nil {
			return nil, w.fail(&IOError{Op: "sync", Dir: w.m.cfg.Dir, Path: w.path, Err: err})
		}
	}
	p := &Partition{m: w.m, path: w.path, f: w.f, subs: w.subs, size: w.size}
	w.m.unregister(w)
	w.f, w.buf, w.subs = nil, nil, nil
	w.err = fmt.Errorf("%w: writer of %s is finished", ErrClosed, w.path)
	if !w.m.register(p) {
		p.discard()
		return nil, ErrClosed
	}
	return p, nil
}

// Abort discards the partition: its file is removed. Idempotent; a
// finished writer's partition is not affected.
func (w *Writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return
	}
	w.removeFile()
	w.err = fmt.Errorf("%w: writer of %s was aborted", ErrClosed, w.path)
}

func (w *Writer) discard() error {
	w.Abort()
	return nil
}
