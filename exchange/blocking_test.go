package exchange_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/spill"
)

func spillFileCount(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".data") {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBlockingBoundedMemory: writing 64 MiB into a BLOCKING partition
// with nobody reading it neither blocks nor grows the heap with the
// data: it goes to disk through the partition's few segments and the
// spill write buffer.
func TestBlockingBoundedMemory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	env := localEnv(t, exchange.Config{NetworkMemory: 4 << 20, SpillDir: dir})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 4, Type: exchange.Blocking})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
	rec := make([]byte, 1020)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const total = 64 << 20
	for i := 0; i < total/(len(rec)+4); i++ {
		binary.BigEndian.PutUint32(rec, uint32(i))
		if err := w.Emit(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 8<<20 {
		t.Fatalf("writing 64 MiB allocated %d MiB on the heap, want < 8", grown>>20)
	}
	if got := p.BufferPool().Outstanding(); got != 0 {
		t.Fatalf("%d segments held after Finish, want 0", got)
	}
	if n := spillFileCount(t, dir); n != 1 {
		t.Fatalf("%d spill files, want 1", n)
	}
	p.Release()
	if n := spillFileCount(t, dir); n != 0 {
		t.Fatalf("%d spill files after Release, want 0", n)
	}
}

// TestBlockingLocalReadsAndLifecycle: a local channel waits for Finish
// (PartitionNotFound, retried), then reads every record in order; the
// environment's close removes the files of a partition never released.
func TestBlockingLocalReadsAndLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	env, err := exchange.NewEnvironment(ctx, exchange.Config{SpillDir: dir, SegmentSize: 4 << 10, NetworkMemory: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, Type: exchange.Blocking, Compression: exchange.CompressionNone})
	if err != nil {
		t.Fatal(err)
	}
	spec := []exchange.ChannelSpec{{Partition: p.ID()}}
	g, err := env.CreateInputGate(exchange.GateConfig{Channels: spec, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	rec := make([]byte, 100)
	for i := range n {
		binary.BigEndian.PutUint32(rec, uint32(i))
		if err := p.EmitTo(ctx, 0, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.EmitTo(ctx, 0, rec); !errors.Is(err, exchange.ErrFinished) {
		t.Fatalf("EmitTo after Finish: %v", err)
	}
	for i := 0; ; {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			if i != n {
				t.Fatalf("read %d records, want %d", i, n)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != nil {
			continue
		}
		if got := binary.BigEndian.Uint32(e.Record); got != uint32(i) {
			t.Fatalf("record %d arrived as %d", got, i)
		}
		i++
	}
	g.Close()
	if spillFileCount(t, dir) != 1 {
		t.Fatal("no spill file")
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	if c := spillFileCount(t, dir); c != 0 {
		t.Fatalf("%d spill files after Environment.Close", c)
	}
	if out := env.BufferPool().Outstanding(); out != 0 {
		t.Fatalf("%d segments outstanding after close", out)
	}
}

// TestBlockingSpillDirNotWritable: a directory that cannot be written
// fails the partition's creation with spill's typed error naming it.
func TestBlockingSpillDirNotWritable(t *testing.T) {
	// Permissions do not stop root: a path below a regular file cannot
	// be a directory for anyone.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "spill")
	if os.Geteuid() != 0 {
		dir = filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
	}
	env := localEnv(t, exchange.Config{SpillDir: dir})
	_, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, Type: exchange.Blocking})
	var ioErr *spill.IOError
	if !errors.Is(err, spill.ErrNotWritable) || !errors.As(err, &ioErr) || ioErr.Dir != dir {
		t.Fatalf("CreatePartition in a read-only directory: %v, want spill.ErrNotWritable naming %s", err, dir)
	}
	if out := env.BufferPool().Outstanding(); out != 0 {
		t.Fatalf("%d segments held after the failed creation", out)
	}
}

// TestBlockingDiskFull: a BLOCKING partition whose disk fills fails its
// writer with spill's typed error naming the directory, keeps no
// partial file and returns its memory.
func TestBlockingDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs as root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SpillDir: dir})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 2, Type: exchange.Blocking, Compression: exchange.CompressionNone})
	if err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, 4000)
	var emitErr error
	for i := 0; i < 1000 && emitErr == nil; i++ { // 4 MB into 1 MiB
		emitErr = p.EmitTo(ctx, i%2, rec)
	}
	if emitErr == nil {
		emitErr = p.Finish(ctx)
	}
	var ioErr *spill.IOError
	if !errors.Is(emitErr, spill.ErrDiskFull) || !errors.As(emitErr, &ioErr) || ioErr.Dir != dir {
		t.Fatalf("writing 4 MB into a 1 MiB tmpfs: %v, want spill.ErrDiskFull naming %s", emitErr, dir)
	}
	if n := spillFileCount(t, dir); n != 0 {
		t.Fatalf("%d partial spill files left", n)
	}
	p.Release()
	if out := p.BufferPool().Outstanding(); out != 0 {
		t.Fatalf("%d segments held after Release", out)
	}
}
