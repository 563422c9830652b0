package exchange

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qexchange/qexchange/exchange/wire"
)

// Defaults for Config fields left zero.
const (
	DefaultNetworkMemory = 64 << 20
	DefaultSegmentSize   = 32 << 10
	// MinSegmentSize keeps room for framing and small records.
	MinSegmentSize = 4 << 10
)

// NetworkBufferPool is the fixed network memory of one node, cut into
// equal segments (Flink's NetworkBufferPool). Partitions and gates take
// LocalBufferPools from it; nothing on the data path allocates buffers
// outside it.
//
// A LocalBufferPool's minimum is reserved when it is created, so a setup
// that cannot be served fails with *InsufficientBuffersError at once
// instead of hanging later; segments above the minimum (up to the pool's
// maximum) are lent while the node has spare ones.
type NetworkBufferPool struct {
	segmentSize int
	total       int

	mu       sync.Mutex
	free     []*segment
	reserved int // sum over live local pools of their unmet minimum
	pools    map[*LocalBufferPool]struct{}
	waiting  int // local pools blocked waiting for spare segments
	closed   bool
}

// NewNetworkBufferPool cuts memory bytes into segments of segmentSize.
func NewNetworkBufferPool(memory int64, segmentSize int) (*NetworkBufferPool, error) {
	if segmentSize < MinSegmentSize {
		return nil, configError("SegmentSize", segmentSize, "must be at least 4 KiB")
	}
	if segmentSize > 16<<20 {
		return nil, configError("SegmentSize", segmentSize, "must be at most 16 MiB")
	}
	n := memory / int64(segmentSize)
	if n < 1 {
		return nil, configError("NetworkMemory", memory, "must hold at least one segment")
	}
	if n > 1<<22 {
		return nil, configError("NetworkMemory", memory, "too many segments (max 4M)")
	}
	p := &NetworkBufferPool{
		segmentSize: segmentSize,
		total:       int(n),
		free:        make([]*segment, n),
		pools:       make(map[*LocalBufferPool]struct{}),
	}
	slab := make([]byte, int(n)*segmentSize)
	segs := make([]segment, n)
	for i := range segs {
		segs[i].data = slab[i*segmentSize : (i+1)*segmentSize : (i+1)*segmentSize]
		p.free[i] = &segs[i]
	}
	return p, nil
}

// SegmentSize is the size of every segment.
func (p *NetworkBufferPool) SegmentSize() int { return p.segmentSize }

// TotalSegments is the number of segments the pool was cut into.
func (p *NetworkBufferPool) TotalSegments() int { return p.total }

// Outstanding is the number of segments not back in the pool. After every
// partition, gate and transport of a node is closed it must be 0.
func (p *NetworkBufferPool) Outstanding() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total - len(p.free)
}

// CreateLocalPool reserves min segments for what (named in errors) and
// lets it use up to max.
func (p *NetworkBufferPool) CreateLocalPool(what string, min, max int) (*LocalBufferPool, error) {
	if min < 1 {
		return nil, configError("minimum buffers of "+what, min, "must be at least 1")
	}
	if max < min {
		return nil, configError("maximum buffers of "+what, max, "must be at least the minimum")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if have := len(p.free) - p.reserved; min > have {
		return nil, &InsufficientBuffersError{What: what, Need: min, Have: max0(have), SegmentSize: p.segmentSize}
	}
	lp := &LocalBufferPool{global: p, what: what, min: min, max: max, notify: make(chan struct{}, 1)}
	p.reserved += min
	p.pools[lp] = struct{}{}
	return lp, nil
}

// take hands lp one segment if lp may have it. Called with p.mu held.
func (p *NetworkBufferPool) take(lp *LocalBufferPool) *segment {
	if len(p.free) == 0 || lp.held >= lp.max {
		return nil
	}
	if lp.held >= lp.min && len(p.free) <= p.reserved {
		return nil // the rest is reserved for other pools' minimums
	}
	s := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	if lp.held < lp.min {
		p.reserved--
	}
	lp.held++
	return s
}

// give returns a segment lp no longer holds. Called with p.mu held.
func (p *NetworkBufferPool) give(lp *LocalBufferPool, s *segment) {
	s.owner = nil
	p.free = append(p.free, s)
	lp.held--
	if lp.held < lp.min && !lp.destroyed {
		p.reserved++
	}
	if p.waiting > 0 {
		for other := range p.pools {
			if other.waiters > 0 {
				other.wake()
			}
		}
	}
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}

// LocalBufferPool is the share of network memory of one partition or
// gate (Flink's LocalBufferPool).
type LocalBufferPool struct {
	global *NetworkBufferPool
	what   string
	min    int
	max    int

	// Guarded by global.mu: one lock for the node's memory keeps the
	// accounting simple and is taken once per segment, not per record.
	held      int          // segments taken from global (in use or cached)
	cached    []*segment   // recycled segments kept for reuse, up to min
	listeners []bufferWant // waiting for a segment, served in order
	waiters   int
	destroyed bool

	notify chan struct{}

	// Time writers spent waiting for a segment (backpressure), for
	// metrics: finished waits, and the start of the current one (0 when
	// none). Touched only when a writer has to wait.
	waitedNanos  atomic.Int64
	waitingSince atomic.Int64
}

// BackpressuredTime is the total time writers have waited for a free
// segment of this pool, including a wait still in progress.
func (lp *LocalBufferPool) BackpressuredTime() time.Duration {
	d := lp.waitedNanos.Load()
	if since := lp.waitingSince.Load(); since != 0 {
		d += max(time.Now().UnixNano()-since, 0)
	}
	return time.Duration(d)
}

// bufferWant is notified when a segment is free for it. It returns
// accepted=false if it does not take the buffer (it was released).
type bufferWant interface {
	bufferAvailable(Buffer) (accepted, needMore bool)
}

// Outstanding is the number of this pool's segments in use.
func (lp *LocalBufferPool) Outstanding() int {
	lp.global.mu.Lock()
	defer lp.global.mu.Unlock()
	return lp.held - len(lp.cached)
}

// Min and Max are the pool's required and maximum number of segments.
func (lp *LocalBufferPool) Min() int { return lp.min }
func (lp *LocalBufferPool) Max() int { return lp.max }

// Request returns a fresh buffer (whole segment, length 0 written) if one
// is available now.
func (lp *LocalBufferPool) Request() (Buffer, bool) {
	s := lp.requestSegment()
	if s == nil {
		return Buffer{}, false
	}
	return bufferOf(s, 0, len(s.data), wire.DataBuffer), true
}

func (lp *LocalBufferPool) requestSegment() *segment {
	g := lp.global
	g.mu.Lock()
	if lp.destroyed {
		g.mu.Unlock()
		return nil
	}
	var s *segment
	if n := len(lp.cached); n > 0 {
		s = lp.cached[n-1]
		lp.cached = lp.cached[:n-1]
	} else {
		s = g.take(lp)
	}
	g.mu.Unlock()
	if s != nil {
		s.owner = lp
		s.refs.Store(1)
		s.written.Store(0)
		s.finished.Store(false)
	}
	return s
}

// requestSegmentWait blocks until a segment is free, ctx is done or the
// pool is destroyed. The wait is the backpressure of a bounded partition.
func (lp *LocalBufferPool) requestSegmentWait(ctx context.Context) (*segment, error) {
	if s := lp.requestSegment(); s != nil {
		return s, nil
	}
	start := time.Now().UnixNano()
	lp.waitingSince.Store(start)
	defer func() {
		lp.waitingSince.Store(0)
		lp.waitedNanos.Add(max(time.Now().UnixNano()-start, 0))
	}()
	for {
		if s := lp.requestSegment(); s != nil {
			return s, nil
		}
		g := lp.global
		g.mu.Lock()
		if lp.destroyed {
			g.mu.Unlock()
			return nil, ErrClosed
		}
		lp.waiters++
		g.waiting++
		g.mu.Unlock()
		// Re-check after announcing the wait so a segment returned in
		// between is not missed: give() wakes only announced waiters.
		s := lp.requestSegment()
		if s == nil {
			select {
			case <-lp.notify:
			case <-ctx.Done():
			}
		}
		g.mu.Lock()
		lp.waiters--
		g.waiting--
		g.mu.Unlock()
		if s != nil {
			return s, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// requestOrListen returns a buffer now, or registers w to be handed one
// when a segment comes back (then returns false).
func (lp *LocalBufferPool) requestOrListen(w bufferWant) (Buffer, bool) {
	if b, ok := lp.Request(); ok {
		return b, true
	}
	g := lp.global
	g.mu.Lock()
	defer g.mu.Unlock()
	if lp.destroyed {
		return Buffer{}, false
	}
	// A segment may have come back between Request and here.
	if n := len(lp.cached); n > 0 {
		s := lp.cached[n-1]
		lp.cached = lp.cached[:n-1]
		s.owner = lp
		s.refs.Store(1)
		return bufferOf(s, 0, len(s.data), wire.DataBuffer), true
	}
	lp.listeners = append(lp.listeners, w)
	return Buffer{}, false
}

// removeListener forgets w (a released channel).
func (lp *LocalBufferPool) removeListener(w bufferWant) {
	g := lp.global
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, l := range lp.listeners {
		if l == w {
			lp.listeners = append(lp.listeners[:i], lp.listeners[i+1:]...)
			return
		}
	}
}

func (lp *LocalBufferPool) wake() {
	select {
	case lp.notify <- struct{}{}:
	default:
	}
}

// recycle takes back a segment whose last reference was released: first
// to a waiting listener, then to the pool's cache up to its minimum, and
// the rest back to the node so other pools can use it.
func (lp *LocalBufferPool) recycle(s *segment) {
	g := lp.global
	for {
		g.mu.Lock()
		if lp.destroyed {
			g.give(lp, s)
			g.mu.Unlock()
			return
		}
		if len(lp.listeners) == 0 {
			if lp.held <= lp.min || lp.waiters > 0 {
				lp.cached = append(lp.cached, s)
			} else {
				g.give(lp, s)
			}
			waiters := lp.waiters
			g.mu.Unlock()
			if waiters > 0 {
				lp.wake()
			}
			return
		}
		w := lp.listeners[0]
		lp.listeners = lp.listeners[1:]
		g.mu.Unlock()

		s.refs.Store(1)
		accepted, needMore := w.bufferAvailable(bufferOf(s, 0, len(s.data), wire.DataBuffer))
		if accepted {
			if needMore {
				g.mu.Lock()
				if !lp.destroyed {
					lp.listeners = append(lp.listeners, w)
				}
				g.mu.Unlock()
			}
			return
		}
		// Not taken: offer it to the next listener or keep it.
	}
}

// Destroy releases the pool's reservation and cached segments. Segments
// still in use go straight back to the node when released.
func (lp *LocalBufferPool) Destroy() {
	g := lp.global
	g.mu.Lock()
	if lp.destroyed {
		g.mu.Unlock()
		return
	}
	if lp.held < lp.min {
		g.reserved -= lp.min - lp.held
	}
	lp.destroyed = true
	for _, s := range lp.cached {
		g.give(lp, s)
	}
	lp.cached = nil
	lp.listeners = nil
	delete(g.pools, lp)
	g.mu.Unlock()
	lp.wake()
}
