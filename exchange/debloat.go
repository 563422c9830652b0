package exchange

import (
	"cmp"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Buffer debloating (Flink's FLIP-183; docs/architecture.md, "Buffer
// debloating"): a gate measures how fast its task consumes and tells its
// producers to cut their buffers so that what is in flight to it takes
// about Target to consume. A checkpoint barrier queued behind the data
// then waits about Target, whatever the consumer's speed.

// Debloating defaults (Flink's taskmanager.network.memory.buffer-debloat.*).
const (
	DefaultDebloatTarget    = time.Second
	DefaultDebloatPeriod    = 200 * time.Millisecond
	DefaultDebloatSamples   = 20
	DefaultDebloatThreshold = 0.25
	// DefaultMinBufferSize is the smallest buffer size a gate announces
	// (Flink's taskmanager.memory.min-segment-size).
	DefaultMinBufferSize = 256
	// MinDebloatedBufferSize is the smallest cut a producer makes,
	// whatever a consumer announces: a hostile or broken consumer cannot
	// make it send a frame per few bytes.
	MinDebloatedBufferSize = 64
)

// DebloatConfig turns buffer debloating on for a gate. Zero values mean
// the documented defaults; negative values are errors. Debloating applies
// to remote channels only: a local channel reads the producer's segments
// in place, so nothing is in flight to shrink.
type DebloatConfig struct {
	// Enabled turns debloating on (off by default).
	Enabled bool
	// Target is the time the data in flight to the gate should take to
	// consume (default 1 s).
	Target time.Duration
	// Period is how often the gate measures its throughput (200 ms).
	Period time.Duration
	// Samples is how many periods the throughput is averaged over (20).
	Samples int
	// Threshold: a new size is announced only when it differs from the
	// last announced one by more than this fraction (0.25), or reaches
	// a bound.
	Threshold float64
	// MinBufferSize is the smallest size announced (256 B; at least
	// MinDebloatedBufferSize and at most the segment size).
	MinBufferSize int
}

func (c DebloatConfig) withDefaults() DebloatConfig {
	c.Target = cmp.Or(c.Target, DefaultDebloatTarget)
	c.Period = cmp.Or(c.Period, DefaultDebloatPeriod)
	c.Samples = cmp.Or(c.Samples, DefaultDebloatSamples)
	c.Threshold = cmp.Or(c.Threshold, DefaultDebloatThreshold)
	c.MinBufferSize = cmp.Or(c.MinBufferSize, DefaultMinBufferSize)
	return c
}

// validate checks c after withDefaults against the segment size.
func (c DebloatConfig) validate(segmentSize int) error {
	switch {
	case c.Target < 0:
		return configError("Debloat.Target", c.Target, "must be > 0")
	case c.Period < 0:
		return configError("Debloat.Period", c.Period, "must be > 0")
	case c.Samples < 0 || c.Samples > 1<<16:
		return configError("Debloat.Samples", c.Samples, "must be in 1..65536")
	case c.Threshold < 0 || c.Threshold >= 1 || math.IsNaN(c.Threshold):
		return configError("Debloat.Threshold", c.Threshold, "must be in (0, 1)")
	case c.MinBufferSize < MinDebloatedBufferSize || c.MinBufferSize > segmentSize:
		return configError("Debloat.MinBufferSize", c.MinBufferSize, fmt.Sprintf("must be in %d..%d (the segment size)", MinDebloatedBufferSize, segmentSize))
	}
	return nil
}

// debloatedSize is the buffer size for which buffersInUse buffers hold
// target's worth of throughput (bytes/s), within [minSize, maxSize].
func debloatedSize(throughput float64, buffersInUse int, target time.Duration, minSize, maxSize int) int {
	size := throughput * target.Seconds() / float64(max(buffersInUse, 1))
	if !(size < float64(maxSize)) { // also NaN, +Inf
		return maxSize
	}
	return max(int(size), minSize)
}

// announceSize reports whether size is news enough to announce after
// last: it reaches a bound it was not at, or differs by more than
// threshold (Flink's hysteresis, which keeps a noisy throughput from
// sending a message every period).
func announceSize(size, last, minSize, maxSize int, threshold float64) bool {
	if size == last {
		return false
	}
	if size == minSize || size == maxSize {
		return true
	}
	return math.Abs(float64(size-last)) > threshold*float64(last)
}

// debloater is a gate's side of debloating: Next counts the bytes it
// takes and the time it waits; a goroutine samples them every period.
type debloater struct {
	g       *InputGate
	cfg     DebloatConfig
	maxSize int

	consumed atomic.Int64 // bytes of data buffers Next took
	idle     atomic.Int64 // nanoseconds Next waited for data
	size     atomic.Int64 // the size last announced
	// estimateMs: what the buffers in use take to consume at the measured
	// throughput, at the last announced size (metrics).
	estimateMs atomic.Int64

	// Sampler goroutine only: a ring of cfg.Samples measurements.
	samples []debloatSample
	n, next int
}

// debloatSample is one period's throughput (bytes/s) and buffers in use.
// The throughput is averaged over the samples; of the buffers in use the
// largest count is taken: they swing with every aligned barrier (the
// channel drains while its producer is blocked, and the backlog the
// consumer knows is stale until buffers flow again), and the size must
// bound what is in flight when the pipeline is full, not in between.
type debloatSample struct {
	throughput float64
	inUse      int
}

func newDebloater(g *InputGate, cfg DebloatConfig, segmentSize int) *debloater {
	d := &debloater{g: g, cfg: cfg, maxSize: segmentSize, samples: make([]debloatSample, cfg.Samples)}
	d.size.Store(int64(segmentSize))
	return d
}

// run samples until the gate closes.
func (d *debloater) run() {
	t := time.NewTicker(d.cfg.Period)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-d.g.ctx.Done():
			return
		case now := <-t.C:
			d.sample(now.Sub(last))
			last = now
		}
	}
}

// sample takes one period's measurement and announces a new size if it
// is news. Throughput counts only the time the gate was busy (Flink
// subtracts idle time too): a consumer that waits for a slow producer
// is not slow, and must not shrink its buffers for it.
func (d *debloater) sample(elapsed time.Duration) {
	bytes := d.consumed.Swap(0)
	busy := elapsed - time.Duration(d.idle.Swap(0))
	if busy < elapsed/100 {
		return // idle all period: nothing learnt about the consumer's speed
	}
	d.samples[d.next] = debloatSample{throughput: float64(bytes) / busy.Seconds(), inUse: d.g.buffersInUse()}
	d.next = (d.next + 1) % len(d.samples)
	d.n = min(d.n+1, len(d.samples))
	var throughput float64
	inUse := 0
	for _, s := range d.samples[:d.n] {
		throughput += s.throughput
		inUse = max(inUse, s.inUse)
	}
	throughput /= float64(d.n)
	size := debloatedSize(throughput, inUse, d.cfg.Target, d.cfg.MinBufferSize, d.maxSize)
	if throughput > 0 {
		d.estimateMs.Store(int64(float64(d.size.Load()) * float64(max(inUse, 1)) / throughput * 1000))
	}
	if !announceSize(size, int(d.size.Load()), d.cfg.MinBufferSize, d.maxSize, d.cfg.Threshold) {
		return
	}
	d.size.Store(int64(size))
	d.g.env.log.Debug().Float64("throughput", throughput).Int("buffers_in_use", inUse).Int("size", size).Msg("debloat: new buffer size")
	for _, ch := range d.g.channels {
		if rc, ok := ch.(*remoteChannel); ok {
			rc.announceBufferSize(size)
		}
	}
}

// buffersInUse is Flink's count over the gate's remote channels: the
// buffers received and not yet consumed plus the backlog the producer
// announced (what is, or is about to be, in flight).
func (g *InputGate) buffersInUse() int {
	n := 0
	for _, ch := range g.channels {
		if rc, ok := ch.(*remoteChannel); ok {
			rc.mu.Lock()
			n += rc.received.len() + rc.rc.Backlog()
			rc.mu.Unlock()
		}
	}
	return n
}

// BufferSize is the buffer size the gate last announced to its remote
// producers: the segment size unless debloating shrank it.
func (g *InputGate) BufferSize() int {
	if g.debloat == nil {
		return g.env.pool.segmentSize
	}
	return int(g.debloat.size.Load())
}

// announcedSize is the size a channel announces when it connects: 0 when
// there is nothing to announce.
func (g *InputGate) announcedSize() int {
	if g.debloat == nil {
		return 0
	}
	if s := int(g.debloat.size.Load()); s < g.debloat.maxSize {
		return s
	}
	return 0
}

// announceBufferSize sends size to the producer; a channel not connected
// yet announces the gate's size when it connects (open).
func (c *remoteChannel) announceBufferSize(size int) {
	link, err := c.currentLink()
	if err != nil {
		return
	}
	if err := link.NewBufferSize(size); err != nil {
		c.g.env.log.Debug().Err(err).Int("size", size).Msg("announcing a debloated buffer size")
	}
}

// setBufferSize records the size sub's consumer announced (any
// goroutine); the writer applies it to the next segment it opens.
func (s *subpartition) setBufferSize(n int) {
	s.bufferSize.Store(int32(min(n, 1<<30)))
}

// cutSize is where the writer cuts sub's next segment of segmentLen
// bytes: the announced size within [MinDebloatedBufferSize, segmentLen].
func (s *subpartition) cutSize(segmentLen int32) int32 {
	n := s.bufferSize.Load()
	if n <= 0 || n >= segmentLen {
		return segmentLen
	}
	return max(n, min(MinDebloatedBufferSize, segmentLen))
}

// SetBufferSize applies a consumer's NewBufferSize: the producer cuts the
// subpartition's buffers at size bytes from its next buffer on (clamped
// to [MinDebloatedBufferSize, segment size]). Non-positive sizes are
// ignored (the wire codec refuses them).
func (r *SubpartitionView) SetBufferSize(size int) {
	if size > 0 {
		r.sub.setBufferSize(size)
	}
}
