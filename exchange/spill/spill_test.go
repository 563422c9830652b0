package spill_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/qexchange/qexchange/exchange/spill"
	"github.com/qexchange/qexchange/exchange/wire"
)

const segmentSize = 32 << 10

// writePartition spills count buffers per subpartition, round robin, with
// sizes cycling through sizes.
func writePartition(t testing.TB, m *spill.Manager, subs, count int, sizes []int) *spill.Partition {
	t.Helper()
	w, err := m.NewWriter("p0", subs)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxSize(sizes))
	for i := range count {
		for sub := range subs {
			p := buf[:sizes[(i+sub)%len(sizes)]]
			fillPayload(p, sub, i)
			if err := w.Append(sub, metaFor(sub, i), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	p, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func MaxSize(sizes []int) int {
	m := 0
	for _, s := range sizes {
		m = max(m, s)
	}
	return m
}

// readAll reads subpartition sub from its start, verifying every buffer,
// and stops after limit buffers (-1: all).
func readAll(t testing.TB, p *spill.Partition, sub, limit int, sizes []int) int {
	t.Helper()
	r, err := p.NewReader(sub)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer r.Close()
	dst := make([]byte, max(MaxSize(sizes), segmentSize))
	want := make([]byte, len(dst))
	i := 0
	for ; limit < 0 || i < limit; i++ {
		if rem := r.Remaining(); rem != p.Buffers(sub)-i {
			t.Errorf("sub %d: remaining %d before buffer %d of %d", sub, rem, i, p.Buffers(sub))
			return i
		}
		if backlog, want := r.Backlog(), dataBuffersFrom(sub, i, p.Buffers(sub)); backlog != want {
			t.Errorf("sub %d: backlog %d before buffer %d, want %d", sub, backlog, i, want)
			return i
		}
		size, isEvent, ok := r.Peek()
		n, meta, err := r.Next(dst)
		if err == io.EOF {
			if ok {
				t.Errorf("sub %d: EOF after Peek found buffer %d", sub, i)
			}
			break
		}
		if err != nil {
			t.Errorf("sub %d buffer %d: %v", sub, i, err)
			return i
		}
		w := want[:sizes[(i+sub)%len(sizes)]]
		fillPayload(w, sub, i)
		if !bytes.Equal(dst[:n], w) || meta != metaFor(sub, i) || size != n || isEvent != meta.DataType.IsEvent() {
			t.Errorf("sub %d buffer %d: %d bytes (want %d, peeked %d), meta %+v (want %+v, peeked event %v)", sub, i, n, len(w), size, meta, metaFor(sub, i), isEvent)
			return i
		}
	}
	return i
}

// dataBuffersFrom counts the data buffers among buffers i..n-1 of sub.
func dataBuffersFrom(sub, i, n int) int {
	c := 0
	for ; i < n; i++ {
		if !metaFor(sub, i).DataType.IsEvent() {
			c++
		}
	}
	return c
}

func TestWriteAndReadBackManyTimes(t *testing.T) {
	// A 4 KiB write buffer makes the 10 KiB buffers take the direct path.
	m := newManager(t, spill.Config{WriteBufferSize: spill.MinWriteBufferSize})
	sizes := []int{segmentSize, 1, 0, 100, 10 << 10, 4 << 10, segmentSize - 1}
	const subs, count = 4, 50
	p := writePartition(t, m, subs, count, sizes)
	for sub := range subs {
		if p.Buffers(sub) != count {
			t.Fatalf("sub %d has %d buffers, want %d", sub, p.Buffers(sub), count)
		}
	}
	if fi, err := os.Stat(p.Path()); err != nil || fi.Size() != p.Size() {
		t.Fatalf("file %v, size %d; partition says %d", err, fi.Size(), p.Size())
	}

	// Two consumers one after the other, then a consumer that fails
	// mid-read and its replacement from the start.
	for range 2 {
		for sub := range subs {
			if n := readAll(t, p, sub, -1, sizes); n != count {
				t.Fatalf("sub %d: read %d buffers, want %d", sub, n, count)
			}
		}
	}
	if n := readAll(t, p, 2, count/2, sizes); n != count/2 {
		t.Fatalf("partial read stopped at %d", n)
	}
	if n := readAll(t, p, 2, -1, sizes); n != count {
		t.Fatalf("re-read after a failed reader: %d buffers, want %d", n, count)
	}

	// All subpartitions at once, two readers each.
	var wg sync.WaitGroup
	for sub := range subs * 2 {
		wg.Go(func() {
			if n := readAll(t, p, sub%subs, -1, sizes); n != count {
				t.Errorf("concurrent read of sub %d: %d buffers", sub%subs, n)
			}
		})
	}
	wg.Wait()

	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file after release: %v", err)
	}
	if names := dirEntries(t, m.Dir()); len(names) != 0 {
		t.Fatalf("left after release: %v", names)
	}
}

func TestReleaseFailsReaders(t *testing.T) {
	m := newManager(t, spill.Config{})
	p := writePartition(t, m, 1, 4, []int{1000})
	r, err := p.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 1000)
	if _, _, err := r.Next(dst); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
	if _, _, err := r.Next(dst); !errors.Is(err, spill.ErrReleased) {
		t.Fatalf("read after release: %v, want ErrReleased", err)
	}
	if _, err := p.NewReader(0); !errors.Is(err, spill.ErrReleased) {
		t.Fatalf("new reader after release: %v, want ErrReleased", err)
	}
}

func TestEmptySubpartitionsAndPartition(t *testing.T) {
	m := newManager(t, spill.Config{})
	w, err := m.NewWriter("empty", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(1, spill.Meta{DataType: wire.EventBuffer}, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	p, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	for sub, want := range []int{0, 1, 0} {
		r, err := p.NewReader(sub)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for {
			_, _, err := r.Next(make([]byte, 8))
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got++
		}
		if _, _, ok := r.Peek(); got != want || ok {
			t.Fatalf("sub %d: %d buffers, want %d", sub, got, want)
		}
	}
}

func TestBadArguments(t *testing.T) {
	m := newManager(t, spill.Config{})
	for _, label := range []string{"../x", "a/b", strings.Repeat("x", 65)} {
		if _, err := m.NewWriter(label, 1); !errors.Is(err, spill.ErrInvalidArgument) {
			t.Errorf("label %q: %v, want ErrInvalidArgument", label, err)
		}
	}
	if _, err := m.NewWriter("x", 0); !errors.Is(err, spill.ErrInvalidArgument) {
		t.Errorf("0 subpartitions: %v", err)
	}
	w, err := m.NewWriter("x", 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(2, spill.Meta{}, []byte{1}); !errors.Is(err, spill.ErrInvalidArgument) {
		t.Errorf("subpartition 2 of 2: %v", err)
	}
	if err := w.Append(0, spill.Meta{DataType: 99}, []byte{1}); !errors.Is(err, spill.ErrInvalidArgument) {
		t.Errorf("data type 99: %v", err)
	}
	if err := w.Append(0, spill.Meta{}, make([]byte, spill.MaxBufferSize+1)); !errors.Is(err, spill.ErrTooLarge) {
		t.Errorf("oversized buffer: %v", err)
	}
	if err := w.Append(0, spill.Meta{}, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	p, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(0, spill.Meta{}, []byte{1}); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("append after finish: %v", err)
	}
	if _, err := p.NewReader(-1); !errors.Is(err, spill.ErrInvalidArgument) {
		t.Errorf("reader of sub -1: %v", err)
	}
	r, _ := p.NewReader(0)
	if _, _, err := r.Next(make([]byte, 99)); !errors.Is(err, spill.ErrInvalidArgument) {
		t.Errorf("short dst: %v", err)
	}
	if n, _, err := r.Next(make([]byte, 100)); err != nil || n != 100 {
		t.Errorf("read after a short dst: %d, %v", n, err)
	}
	for _, size := range []int{-1, 100, 2 << 30} {
		_, err := spill.NewManager(spill.Config{Dir: t.TempDir(), WriteBufferSize: size})
		var ce *spill.ConfigError
		if !errors.As(err, &ce) || ce.Field != "WriteBufferSize" {
			t.Errorf("WriteBufferSize %d: %v, want *ConfigError", size, err)
		}
	}
}

func TestCorruptFileIsDetected(t *testing.T) {
	m := newManager(t, spill.Config{})
	p := writePartition(t, m, 2, 3, []int{500})
	f, err := os.OpenFile(p.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one payload byte of the second buffer of subpartition 1 (file
	// order: s0b0 s1b0 s0b1 s1b1 ...; each is 16 + 500 bytes).
	off := int64(3*(16+500) + 16 + 250)
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xFF
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, _ := p.NewReader(1)
	dst := make([]byte, 500)
	if _, _, err := r.Next(dst); err != nil {
		t.Fatalf("first buffer: %v", err)
	}
	_, _, err = r.Next(dst)
	var ce *spill.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, spill.ErrCorrupt) || ce.Offset != 3*(16+500) {
		t.Fatalf("corrupt buffer: %v, want *CorruptError at %d", err, 3*(16+500))
	}
}

func TestManagerCloseRemovesEverything(t *testing.T) {
	base := t.TempDir()
	m, err := spill.NewManager(spill.Config{Dir: base})
	if err != nil {
		t.Fatal(err)
	}
	p := writePartition(t, m, 2, 10, []int{segmentSize})
	w, err := m.NewWriter("unfinished", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(0, spill.Meta{}, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Dir(), base) || len(dirEntries(t, m.Dir())) != 2 {
		t.Fatalf("manager dir %s holds %v", m.Dir(), dirEntries(t, m.Dir()))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, base); len(names) != 0 {
		t.Fatalf("left in %s after Close: %v", base, names)
	}
	if _, err := p.NewReader(0); !errors.Is(err, spill.ErrReleased) {
		t.Fatalf("reader after manager close: %v", err)
	}
	if err := w.Append(0, spill.Meta{}, []byte{1}); !errors.Is(err, spill.ErrClosed) {
		t.Fatalf("append after manager close: %v", err)
	}
	if _, err := m.NewWriter("late", 1); !errors.Is(err, spill.ErrClosed) {
		t.Fatalf("writer after manager close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestDefaultDirectory(t *testing.T) {
	m, err := spill.NewManager(spill.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if want := filepath.Join(os.TempDir(), spill.DefaultDirName); filepath.Dir(m.Dir()) != want {
		t.Fatalf("dir %s, want under %s", m.Dir(), want)
	}
}

// Writing 64 MiB must not grow the heap by anything like the data: the
// writer holds its write buffer and 8 bytes of index per buffer.
func TestWriterMemoryIsBounded(t *testing.T) {
	m := newManager(t, spill.Config{})
	w, err := m.NewWriter("big", 4)
	if err != nil {
		t.Fatal(err)
	}
	seg := make([]byte, segmentSize)
	const total = 64 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range total / segmentSize {
		seg[0] = byte(i)
		if err := w.Append(i%4, spill.Meta{}, seg); err != nil {
			t.Fatal(err)
		}
	}
	p, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	// TotalAlloc counts every byte allocated meanwhile, so it bounds the
	// peak heap growth from above, whatever the GC did.
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("wrote %d MiB, allocated %d KiB", total>>20, allocated>>10)
	if allocated > 4<<20 {
		t.Fatalf("allocated %d KiB while writing %d MiB; want < 4 MiB", allocated>>10, total>>20)
	}
	if p.Size() != int64(total+(total/segmentSize)*16) || m.BytesWritten() != p.Size() {
		t.Fatalf("file size %d, manager wrote %d", p.Size(), m.BytesWritten())
	}
	p.Release()
}

func BenchmarkWriteRead256MiB(b *testing.B) {
	m := newManager(b, spill.Config{})
	const total, subs = 256 << 20, 4
	seg := make([]byte, segmentSize)
	for i := range seg {
		seg[i] = byte(i * 7)
	}
	b.SetBytes(2 * total) // written once and read once
	b.ReportAllocs()
	for b.Loop() {
		w, err := m.NewWriter("bench", subs)
		if err != nil {
			b.Fatal(err)
		}
		for i := range total / segmentSize {
			if err := w.Append(i%subs, spill.Meta{}, seg); err != nil {
				b.Fatal(err)
			}
		}
		p, err := w.Finish()
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for sub := range subs {
			wg.Go(func() {
				r, _ := p.NewReader(sub)
				dst := make([]byte, segmentSize)
				for {
					if _, _, err := r.Next(dst); err != nil {
						if err != io.EOF {
							b.Error(err)
						}
						return
					}
				}
			})
		}
		wg.Wait()
		p.Release()
	}
}

// Releasing while consumers read (a job cancelled mid-read) fails them
// with ErrReleased, never with another error or a race.
func TestReleaseDuringReads(t *testing.T) {
	m := newManager(t, spill.Config{})
	p := writePartition(t, m, 4, 64, []int{segmentSize})
	started := make(chan struct{}, 4)
	errs := make(chan error, 4)
	for sub := range 4 {
		go func() {
			r, err := p.NewReader(sub)
			if err != nil {
				errs <- err
				return
			}
			dst := make([]byte, segmentSize)
			started <- struct{}{}
			for {
				// Start over at the end, so every reader is mid-read
				// when the release comes.
				_, _, err := r.Next(dst)
				if err == io.EOF {
					r, err = p.NewReader(sub)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 4 {
		<-started
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := <-errs; !errors.Is(err, spill.ErrReleased) {
			t.Fatalf("reader ended with %v, want ErrReleased", err)
		}
	}
}

// Reading into pooled segments must not allocate per buffer, and neither
// may appending (the index grows by chunks, which amortises to nothing).
func TestNoAllocationsPerBuffer(t *testing.T) {
	m := newManager(t, spill.Config{Sync: true})
	w, err := m.NewWriter("allocs", 2)
	if err != nil {
		t.Fatal(err)
	}
	seg := make([]byte, segmentSize)
	// Warm the index up past its first small chunk allocations.
	for i := range 64 {
		if err := w.Append(i%2, spill.Meta{}, seg); err != nil {
			t.Fatal(err)
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		if err := w.Append(0, spill.Meta{}, seg[:1000]); err != nil {
			panic(err)
		}
	}); a > 0.05 {
		t.Errorf("Append allocates %.2f per buffer", a)
	}
	p, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(100, func() {
		if _, _, err := r.Next(seg); err != nil {
			panic(err)
		}
	}); a != 0 {
		t.Errorf("Reader.Next allocates %.2f per buffer", a)
	}
}
