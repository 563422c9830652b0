package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default gate settings (Flink's defaults).
const (
	DefaultExclusiveBuffers = 2
	DefaultFloatingBuffers  = 8
	// NoExclusiveBuffers as GateConfig.ExclusiveBuffers selects 0
	// exclusive buffers: all credit comes from floating buffers, driven by
	// BacklogAnnouncements.
	NoExclusiveBuffers    = -1
	DefaultInitialBackoff = 100 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
)

// ChannelSpec names the subpartition one input channel reads.
type ChannelSpec struct {
	Partition    PartitionID
	Subpartition int
	// Addr is the producer node's transport address; empty means the
	// partition is in this Environment (a LocalInputChannel, no network
	// and no copy).
	Addr string
}

// GateConfig describes an InputGate. Zero values mean the defaults.
type GateConfig struct {
	Channels []ChannelSpec
	// ExclusiveBuffers per remote channel (default 2; NoExclusiveBuffers
	// for none). They are the channel's initial credit.
	ExclusiveBuffers int
	// FloatingBuffers shared by the gate's remote channels (default 8).
	FloatingBuffers int
	// InitialBackoff and MaxBackoff bound partition request retries when
	// the producer's partition (or node) is not there yet: the delay
	// starts at InitialBackoff (100 ms) and doubles up to MaxBackoff
	// (10 s); a retry needed after that fails the channel.
	InitialBackoff, MaxBackoff time.Duration
	// PartitionRequestTimeout, if > 0, is instead the total time a channel
	// keeps retrying a producer that is not there yet (partition not
	// found, connection refused), with the delays above, before it fails
	// with an error naming the address (a *PartitionNotFoundError or an
	// *exchange.ConnectionError).
	PartitionRequestTimeout time.Duration
	// PartitionStateChecker, if set, is asked when a partition request
	// gets PartitionNotFound (Flink's requestPartitionState): a nil error
	// keeps retrying with backoff, an error fails the channel at once
	// with it. Nil: retry blind as above.
	PartitionStateChecker PartitionStateChecker
	// Debloat turns on buffer debloating for the gate's remote channels
	// (off by default; see DebloatConfig).
	Debloat DebloatConfig
}

// PartitionStateChecker asks a coordinator about a partition's producer
// (package rpc/partitionstate implements it).
type PartitionStateChecker interface {
	// CheckPartitionState returns nil while the producer may still come
	// (deploying, running, unknown, or no answer), and the reason to
	// give up otherwise (the producer failed, the partition was released).
	CheckPartitionState(ctx context.Context, partition PartitionID) error
}

// Element is what InputGate.Next returns: a record or an event, and the
// index of the channel (in GateConfig.Channels) it came from.
type Element struct {
	Channel int
	// Record is valid until the next call to Next. Nil for events.
	Record []byte
	// Event is nil for records.
	Event Event
}

// ChannelError is a failure of one input channel, returned once by Next;
// the gate goes on with its other channels, and its end is then a
// *GateFailedError instead of io.EOF.
type ChannelError struct {
	Index   int
	Channel ChannelID
	Err     error
}

func (e *ChannelError) Error() string {
	return fmt.Sprintf("exchange: input channel %d (%s): %v", e.Index, e.Channel, e.Err)
}

func (e *ChannelError) Unwrap() error { return e.Err }

// GateFailedError is how a gate ends when any of its channels failed: Next
// returns it, instead of io.EOF, once every channel has ended, and again
// on every later call. A loop that logs a *ChannelError and goes on can
// therefore never mistake a gate that lost data for a complete one.
// errors.Is and errors.As see every channel's failure through it.
type GateFailedError struct {
	// Failures are the channel failures in the order Next reported them.
	Failures []*ChannelError
}

func (e *GateFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exchange: input gate ended with %d failed channel(s)", len(e.Failures))
	for _, f := range e.Failures {
		b.WriteString("; ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap exposes every channel failure to errors.Is and errors.As.
func (e *GateFailedError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

// inputChannel is a LocalInputChannel or RemoteInputChannel.
type inputChannel interface {
	// poll takes the next buffer without blocking: ok=false when there
	// is none; more says whether another one is ready right away.
	poll() (b Buffer, ok, more bool, err error)
	resume() error
	ackAllRecordsProcessed() error
	sendTaskEvent(event []byte) error
	release()
	id() ChannelID
	deserializer() *deserializer
}

// InputGate is the input of one consumer task (Flink's SingleInputGate):
// one channel per subpartition it reads. Next is for one goroutine at a
// time; the other methods may be called from any goroutine.
type InputGate struct {
	env      *Environment
	cfg      GateConfig
	channels []inputChannel

	exclusive *LocalBufferPool // nil without remote channels
	floating  *LocalBufferPool

	ctx    context.Context // cancelled on Close; bounds channel setup
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	queue  ring[int] // channels with data, in arrival order
	inQ    []bool
	closed bool
	wake   chan struct{}

	// Next's state, guarded by nextMu, except cur and curD, which only
	// Next touches (it is for one goroutine at a time), so that its
	// per-record fast path takes no lock. closing is set by Close before
	// it takes nextMu; the fast path checks it with a plain load.
	nextMu    sync.Mutex
	closing   atomic.Bool
	cur       int           // channel whose buffer is being deserialised, or -1
	curD      *deserializer // channels[cur]'s deserializer, or nil
	done      []bool
	remaining int
	eod       []bool
	failures  []*ChannelError

	// Data taken from channels, for metrics, by locality (0 local,
	// 1 remote); counted only when metered.
	metered bool
	seq     int64 // the gate's number in its environment, a metrics label
	in      [2]struct{ bytes, buffers atomic.Int64 }
	// Partition requests sent, retried, and channel failures by class
	// (failureClasses), for metrics.
	requests, retries atomic.Int64
	failed            [len(failureClasses)]atomic.Int64

	// debloat is nil unless GateConfig.Debloat is enabled (debloat.go).
	debloat *debloater

	closeOnce sync.Once
}

func newInputGate(env *Environment, cfg GateConfig) (*InputGate, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	remote := 0
	for _, c := range cfg.Channels {
		if c.Addr != "" {
			remote++
		}
	}
	debloat := cfg.Debloat.withDefaults()
	if err := debloat.validate(env.pool.segmentSize); err != nil {
		return nil, err
	}
	if remote > 0 && env.transport == nil {
		return nil, configError("Channels", cfg.Channels[0].Addr, "remote channels need a transport (Config.Transport)")
	}
	g := &InputGate{
		env:       env,
		cfg:       cfg,
		channels:  make([]inputChannel, len(cfg.Channels)),
		inQ:       make([]bool, len(cfg.Channels)),
		wake:      make(chan struct{}, 1),
		cur:       -1,
		done:      make([]bool, len(cfg.Channels)),
		eod:       make([]bool, len(cfg.Channels)),
		remaining: len(cfg.Channels),
		metered:   env.metrics != nil,
	}
	if remote > 0 {
		var err error
		if n := remote * cfg.ExclusiveBuffers; n > 0 {
			if g.exclusive, err = env.pool.CreateLocalPool(fmt.Sprintf("input gate (%d remote channels x %d exclusive buffers)", remote, cfg.ExclusiveBuffers), n, n); err != nil {
				return nil, err
			}
		}
		if g.floating, err = env.pool.CreateLocalPool("input gate floating buffers", 1, cfg.FloatingBuffers); err != nil {
			if g.exclusive != nil {
				g.exclusive.Destroy()
			}
			return nil, err
		}
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	if debloat.Enabled && remote > 0 {
		g.debloat = newDebloater(g, debloat, env.pool.segmentSize)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.debloat.run()
		}()
	}
	for i, spec := range cfg.Channels {
		if spec.Addr == "" {
			g.channels[i] = newLocalChannel(g, i, spec)
		} else {
			g.channels[i] = newRemoteChannel(g, i, spec)
		}
	}
	for i, spec := range cfg.Channels {
		if spec.Addr == "" {
			g.channels[i].(*localChannel).start()
		} else {
			g.channels[i].(*remoteChannel).start()
		}
	}
	return g, nil
}

// NumChannels is the number of input channels.
func (g *InputGate) NumChannels() int { return len(g.channels) }

// notifyChannel queues channel i as having something for Next.
func (g *InputGate) notifyChannel(i int, priority bool) {
	g.mu.Lock()
	if g.closed || g.inQ[i] {
		if priority && !g.closed {
			g.moveToFront(i)
		}
		g.mu.Unlock()
		return
	}
	g.inQ[i] = true
	if priority {
		g.queue.pushFront(i)
	} else {
		g.queue.pushBack(i)
	}
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *InputGate) moveToFront(i int) {
	if g.queue.removeFunc(func(c int) bool { return c == i }) {
		g.queue.pushFront(i)
	}
}

// take pops the next channel with data, waiting for one.
func (g *InputGate) take(ctx context.Context) (int, error) {
	for {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return -1, ErrClosed
		}
		if g.queue.len() > 0 {
			i := g.queue.popFront()
			g.inQ[i] = false
			g.mu.Unlock()
			return i, nil
		}
		g.mu.Unlock()
		var waitFrom time.Time
		if g.debloat != nil {
			waitFrom = time.Now()
		}
		select {
		case <-g.wake:
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-g.ctx.Done():
		}
		if g.debloat != nil {
			g.debloat.idle.Add(int64(time.Since(waitFrom)))
		}
	}
}

// Next returns the next record or event, fairly across channels (one
// buffer at a time, round robin), blocking until one is there, ctx is
// done or the gate is closed. After every channel has delivered
// EndOfPartition, it returns io.EOF. A failed channel is reported once as
// a *ChannelError and the gate goes on with the others; a gate any of
// whose channels failed never ends with io.EOF but with a
// *GateFailedError that holds every failure.
func (g *InputGate) Next(ctx context.Context) (Element, error) {
	// Fast path, no lock and no atomic write: a record wholly inside the
	// buffer being deserialised. Close does not touch what it reads.
	if d := g.curD; d != nil && !g.closing.Load() {
		if rec, ok := d.nextInBuffer(); ok {
			return Element{Channel: g.cur, Record: rec}, nil
		}
	}
	return g.nextSlow(ctx)
}

// nextSlow is Next at a buffer's end, for records that span buffers, for
// events, errors and waiting.
func (g *InputGate) nextSlow(ctx context.Context) (Element, error) {
	g.nextMu.Lock()
	defer g.nextMu.Unlock()
	if g.closing.Load() {
		// Close has dropped the buffers: nothing is left to deserialise.
		g.cur, g.curD = -1, nil
	}
	for {
		if g.cur >= 0 {
			i := g.cur
			rec, ok, err := g.curD.next()
			if ok {
				return Element{Channel: i, Record: rec}, nil
			}
			g.cur, g.curD = -1, nil
			if err != nil {
				return Element{Channel: i}, g.failChannel(i, err)
			}
		}
		if g.remaining == 0 {
			if len(g.failures) > 0 {
				return Element{Channel: -1}, &GateFailedError{Failures: g.failures}
			}
			return Element{Channel: -1}, io.EOF
		}
		i, err := g.take(ctx)
		if err != nil {
			return Element{Channel: -1}, err
		}
		if g.done[i] {
			continue
		}
		ch := g.channels[i]
		b, ok, more, err := ch.poll()
		if more {
			g.notifyChannel(i, false)
		}
		if err != nil {
			return Element{Channel: i}, g.failChannel(i, err)
		}
		if !ok {
			continue
		}
		if !b.DataType.IsEvent() {
			if b.Len() == 0 {
				b.Release()
				continue
			}
			g.countIn(ch, b.Len())
			ch.deserializer().setBuffer(b)
			g.cur, g.curD = i, ch.deserializer()
			continue
		}
		ev, err := decodeEvent(b.Bytes(), b.DataType)
		b.Release()
		if err != nil {
			return Element{Channel: i}, g.failChannel(i, err)
		}
		switch ev.(type) {
		case EndOfPartition:
			if ch.deserializer().partial() {
				return Element{Channel: i}, g.failChannel(i, fmt.Errorf("%w: EndOfPartition inside a record", ErrProtocol))
			}
			g.done[i] = true
			g.remaining--
			ch.release()
		case EndOfData:
			g.eod[i] = true
		}
		return Element{Channel: i, Event: ev}, nil
	}
}

// countIn counts a data buffer of n bytes taken from ch: per buffer,
// and nothing at all without metrics.
func (g *InputGate) countIn(ch inputChannel, n int) {
	if !g.metered && g.debloat == nil {
		return
	}
	loc := 0
	if _, remote := ch.(*remoteChannel); remote {
		loc = 1
		if g.debloat != nil { // remote channels only, as buffersInUse
			g.debloat.consumed.Add(int64(n))
		}
	}
	if !g.metered {
		return
	}
	g.in[loc].bytes.Add(int64(n))
	g.in[loc].buffers.Add(1)
}

func (g *InputGate) failChannel(i int, err error) error {
	ch := g.channels[i]
	if !g.done[i] {
		g.done[i] = true
		g.remaining--
	}
	ch.release()
	ch.deserializer().reset()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// A peer that hung up mid-stream reads as EOF underneath; a
		// failure must never look like the gate's clean end.
		err = fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	ce := &ChannelError{Index: i, Channel: ch.id(), Err: err}
	g.failures = append(g.failures, ce)
	if g.metered {
		g.failed[failureClass(err)].Add(1)
	}
	return ce
}

func (g *InputGate) channel(i int) (inputChannel, error) {
	if uint(i) >= uint(len(g.channels)) {
		return nil, configError("channel index", i, fmt.Sprintf("gate has %d channels", len(g.channels)))
	}
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return g.channels[i], nil
}

// ResumeConsumption lets channel i's producer go on after an aligned
// checkpoint barrier.
func (g *InputGate) ResumeConsumption(i int) error {
	ch, err := g.channel(i)
	if err != nil {
		return err
	}
	return ch.resume()
}

// AckAllRecordsProcessed tells every producer that all records up to
// EndOfData have been processed. Every channel must have delivered
// EndOfData first.
func (g *InputGate) AckAllRecordsProcessed() error {
	g.nextMu.Lock()
	for i, ok := range g.eod {
		if !ok {
			g.nextMu.Unlock()
			return fmt.Errorf("%w: channel %d has not delivered EndOfData", ErrInvalidConfig, i)
		}
	}
	g.nextMu.Unlock()
	var errs []error
	for i := range g.channels {
		if err := g.channels[i].ackAllRecordsProcessed(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SendTaskEvent sends event to the producers of every channel (Flink's
// TaskEventRequest).
func (g *InputGate) SendTaskEvent(event []byte) error {
	g.mu.Lock()
	closed := g.closed
	g.mu.Unlock()
	if closed {
		return ErrClosed
	}
	var errs []error
	for _, ch := range g.channels {
		if err := ch.sendTaskEvent(event); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close cancels every channel's partition request and returns the gate's
// buffers. A blocked Next returns ErrClosed. Records Next returned are
// invalid after Close, and Next reads within a buffer without a lock: call
// Close from the goroutine that calls Next, or once it is blocked or has
// returned, never while it may be decoding a buffer.
func (g *InputGate) Close() error {
	g.closeOnce.Do(func() {
		g.closing.Store(true)
		g.mu.Lock()
		g.closed = true
		g.queue = ring[int]{}
		g.mu.Unlock()
		g.cancel()
		g.nextMu.Lock()
		for _, ch := range g.channels {
			ch.release()
			// Not reset: a Next running its fast path may still read the
			// deserializer's position (never its buffer handle).
			ch.deserializer().dropBuffer()
		}
		g.nextMu.Unlock()
		g.wg.Wait()
		if g.exclusive != nil {
			g.exclusive.Destroy()
		}
		if g.floating != nil {
			g.floating.Destroy()
		}
		g.env.gateClosed(g)
	})
	return nil
}
