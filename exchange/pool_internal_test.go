package exchange

import (
	"context"
	"errors"
	"testing"
	"time"
)

func newTestPool(t *testing.T, segments int) *NetworkBufferPool {
	t.Helper()
	p, err := NewNetworkBufferPool(int64(segments*MinSegmentSize), MinSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustLocal(t *testing.T, g *NetworkBufferPool, what string, min, max int) *LocalBufferPool {
	t.Helper()
	lp, err := g.CreateLocalPool(what, min, max)
	if err != nil {
		t.Fatal(err)
	}
	return lp
}

// takeAll requests buffers from lp until it refuses; the count is how
// many it handed out.
func takeAll(lp *LocalBufferPool) []Buffer {
	var bs []Buffer
	for {
		b, ok := lp.Request()
		if !ok {
			return bs
		}
		bs = append(bs, b)
	}
}

func releaseAll(bs []Buffer) {
	for _, b := range bs {
		b.Release()
	}
}

func TestNetworkBufferPoolConfig(t *testing.T) {
	for _, c := range []struct {
		memory  int64
		segment int
		field   string
	}{
		{1 << 20, MinSegmentSize - 1, "SegmentSize"},
		{64 << 20, 32<<20 + 1, "SegmentSize"},
		{MinSegmentSize - 1, MinSegmentSize, "NetworkMemory"},
		{-1, MinSegmentSize, "NetworkMemory"},
		{int64(1<<22+1) * MinSegmentSize, MinSegmentSize, "NetworkMemory"},
	} {
		_, err := NewNetworkBufferPool(c.memory, c.segment)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewNetworkBufferPool(%d, %d): %v, want a *ConfigError for %s", c.memory, c.segment, err, c.field)
		}
	}
	g := newTestPool(t, 4)
	for _, c := range []struct{ min, max int }{{0, 1}, {-1, 1}, {3, 2}} {
		if _, err := g.CreateLocalPool("bad", c.min, c.max); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("CreateLocalPool(%d, %d): %v, want ErrInvalidConfig", c.min, c.max, err)
		}
	}
}

// TestLocalPoolReservation: a pool's minimum is reserved at creation;
// a setup the node cannot serve fails at once, naming what and how much.
func TestLocalPoolReservation(t *testing.T) {
	g := newTestPool(t, 10)
	a := mustLocal(t, g, "gate a", 4, 8)
	b := mustLocal(t, g, "partition b", 4, 4)
	_, err := g.CreateLocalPool("gate c", 3, 3)
	var ib *InsufficientBuffersError
	if !errors.As(err, &ib) || !errors.Is(err, ErrInsufficientBuffers) || ib.What != "gate c" || ib.Need != 3 || ib.Have != 2 || ib.SegmentSize != MinSegmentSize {
		t.Fatalf("third pool: %v (%+v), want need 3 have 2 for gate c", err, ib)
	}
	// a may borrow above its minimum only what nobody has reserved: 10
	// segments - b's 4 = 6, although its maximum is 8.
	as := takeAll(a)
	if len(as) != 6 {
		t.Fatalf("pool a got %d buffers, want 6 (4 own + 2 spare)", len(as))
	}
	// b's reservation is intact.
	bs := takeAll(b)
	if len(bs) != 4 {
		t.Fatalf("pool b got %d buffers, want its reserved 4", len(bs))
	}
	if n := g.Outstanding(); n != 10 {
		t.Fatalf("node outstanding %d, want 10", n)
	}
	if a.Outstanding() != 6 || b.Outstanding() != 4 {
		t.Fatalf("outstanding a=%d b=%d, want 6 and 4", a.Outstanding(), b.Outstanding())
	}
	releaseAll(as)
	releaseAll(bs)
	if a.Outstanding() != 0 || b.Outstanding() != 0 {
		t.Fatalf("after release: outstanding a=%d b=%d", a.Outstanding(), b.Outstanding())
	}
	a.Destroy()
	b.Destroy()
	if n := g.Outstanding(); n != 0 {
		t.Fatalf("node outstanding %d after destroying every pool", n)
	}
	// Everything is free for a new pool again.
	c := mustLocal(t, g, "gate c", 10, 10)
	c.Destroy()
}

// TestLocalPoolRedistribution: segments above a pool's minimum go back
// to the node when released, so another pool can grow into them; up to
// the minimum they stay cached in the pool.
func TestLocalPoolRedistribution(t *testing.T) {
	g := newTestPool(t, 8)
	a := mustLocal(t, g, "a", 2, 8)
	b := mustLocal(t, g, "b", 2, 8)
	as := takeAll(a)
	if len(as) != 6 {
		t.Fatalf("a got %d, want 6 (8 - b's reserved 2)", len(as))
	}
	bs := takeAll(b)
	if len(bs) != 2 {
		t.Fatalf("b got %d, want 2", len(bs))
	}
	// a gives back 4 of its 6: those above its minimum return to the node.
	releaseAll(as[2:])
	as = as[:2]
	more := takeAll(b)
	if len(more) != 4 {
		t.Fatalf("b grew by %d after a released 4 floating segments, want 4", len(more))
	}
	// a's cached minimum: a releases its 2 and gets them back although
	// b holds everything else.
	releaseAll(as)
	if g.Outstanding() != 8 {
		t.Fatalf("node outstanding %d, want 8: a's 2 are cached in a", g.Outstanding())
	}
	as = takeAll(a)
	if len(as) != 2 {
		t.Fatalf("a got %d from its cache, want 2", len(as))
	}
	releaseAll(as)
	releaseAll(bs)
	releaseAll(more)
	a.Destroy()
	b.Destroy()
	if n := g.Outstanding(); n != 0 {
		t.Fatalf("node outstanding %d", n)
	}
}

// TestLocalPoolWait: a writer waiting for a segment (backpressure) gets
// one as soon as another is released, stops at its context, and fails
// with ErrClosed when the pool is destroyed.
func TestLocalPoolWait(t *testing.T) {
	g := newTestPool(t, 2)
	a := mustLocal(t, g, "a", 2, 2)
	bs := takeAll(a)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan *segment, 1)
	go func() {
		s, err := a.requestSegmentWait(ctx)
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	bs[0].Release()
	s := <-got
	if s == nil {
		t.Fatal("no segment after a release")
	}
	Buffer{seg: s}.Release()

	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	takeAll(a) // the segment just released, cached
	if _, err := a.requestSegmentWait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on an exhausted pool: %v, want DeadlineExceeded", err)
	}

	errc := make(chan error, 1)
	go func() {
		_, err := a.requestSegmentWait(ctx)
		errc <- err
	}()
	a.Destroy()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("wait on a destroyed pool: %v, want ErrClosed", err)
	}
	if _, ok := a.Request(); ok {
		t.Fatal("Request on a destroyed pool succeeded")
	}
	// Segments in use when the pool was destroyed go straight back to
	// the node.
	bs[1].Release()
	Buffer{seg: s}.Release()
	if n := g.Outstanding(); n != 0 {
		t.Fatalf("node outstanding %d after releasing into a destroyed pool", n)
	}
}

// wantOne is a bufferWant that takes one buffer, or refuses it.
type wantOne struct {
	got    chan Buffer
	refuse bool
}

func (w *wantOne) bufferAvailable(b Buffer) (bool, bool) {
	if w.refuse {
		return false, false
	}
	w.got <- b
	return true, false
}

// TestLocalPoolListeners: an exhausted pool registers listeners and hands
// released segments to them in order, skipping one that refuses.
func TestLocalPoolListeners(t *testing.T) {
	g := newTestPool(t, 2)
	a := mustLocal(t, g, "a", 2, 2)
	bs := takeAll(a)
	refusing := &wantOne{refuse: true}
	first, second := &wantOne{got: make(chan Buffer, 1)}, &wantOne{got: make(chan Buffer, 1)}
	for _, w := range []*wantOne{refusing, first, second} {
		if _, ok := a.requestOrListen(w); ok {
			t.Fatal("exhausted pool handed out a buffer")
		}
	}
	bs[0].Release()
	select {
	case b := <-first.got:
		b.Release() // back to the pool: the next listener gets it
	default:
		t.Fatal("the first accepting listener got nothing")
	}
	select {
	case b := <-second.got:
		a.removeListener(second)
		b.Release()
	default:
		t.Fatal("the second listener got nothing")
	}
	bs[1].Release()
	if a.Outstanding() != 0 {
		t.Fatalf("outstanding %d", a.Outstanding())
	}
	a.Destroy()
	if g.Outstanding() != 0 {
		t.Fatalf("node outstanding %d", g.Outstanding())
	}
}

func TestDoubleReleasePanics(t *testing.T) {
	g := newTestPool(t, 1)
	a := mustLocal(t, g, "a", 1, 1)
	b, _ := a.Request()
	b.Release()
	defer func() {
		if recover() == nil {
			t.Fatal("a second release did not panic")
		}
	}()
	b.Release()
}
