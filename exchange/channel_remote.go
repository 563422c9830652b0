package exchange

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/qexchange/qexchange/credit"
	"github.com/qexchange/qexchange/exchange/wire"
)

// remoteChannel reads a subpartition on another node through the
// transport (Flink's RemoteInputChannel with its BufferManager): it owns
// exclusive buffers, borrows floating ones from the gate, checks sequence
// numbers and announces credit. It implements ChannelHandler.
type remoteChannel struct {
	g    *InputGate
	idx  int
	spec ChannelSpec
	cid  ChannelID
	d    deserializer

	mu              sync.Mutex
	rc              *credit.Receiver
	received        ring[Buffer] // FIFO, priority events at the front
	availExclusive  []*segment
	availFloating   []*segment
	link            ChannelLink
	pendingAnnounce bool
	err             error
	released        bool
	retry           backoff
	timer           *time.Timer
	opening         bool
}

func newRemoteChannel(g *InputGate, i int, spec ChannelSpec) *remoteChannel {
	c := &remoteChannel{
		g: g, idx: i, spec: spec, cid: NewChannelID(),
		d:     newDeserializer(g.env, spec.Addr),
		rc:    credit.NewReceiver(g.cfg.ExclusiveBuffers),
		retry: newBackoff(g.cfg),
	}
	for range g.cfg.ExclusiveBuffers {
		// The exclusive pool's minimum covers every channel: cannot fail.
		b, _ := g.exclusive.Request()
		b.seg.owner = c
		c.availExclusive = append(c.availExclusive, b.seg)
	}
	return c
}

func (c *remoteChannel) id() ChannelID               { return c.cid }
func (c *remoteChannel) deserializer() *deserializer { return &c.d }

func (c *remoteChannel) start() {
	c.mu.Lock()
	if c.released || c.opening {
		c.mu.Unlock()
		return
	}
	c.opening = true
	c.mu.Unlock()
	c.g.wg.Add(1)
	go func() {
		defer c.g.wg.Done()
		c.open()
	}()
}

// open sends the partition request. Connection failures and a missing
// partition are retried with backoff (the producer may not be up yet).
func (c *remoteChannel) open() {
	req := ChannelRequest{
		Partition:     c.spec.Partition,
		Subpartition:  c.spec.Subpartition,
		Receiver:      c.cid,
		InitialCredit: c.rc.InitialCredit(),
	}
	link, err := c.g.env.transport.OpenChannel(c.g.ctx, c.spec.Addr, req, c)
	c.g.count(&c.g.requests)
	c.mu.Lock()
	c.opening = false
	if c.released {
		c.mu.Unlock()
		if link != nil {
			link.Close()
		}
		return
	}
	if err != nil {
		c.mu.Unlock()
		c.OnError(err)
		return
	}
	c.link = link
	announce := c.pendingAnnounce
	c.pendingAnnounce = false
	c.mu.Unlock()
	if announce {
		link.NotifyCreditAvailable()
	}
}

// retriable: the producer is not there yet (docs/architecture.md,
// "Failure policy", Retries): its partition is not registered, or its
// address refuses or drops connections. Everything else is permanent and
// fails the channel at once: a host name that does not resolve, a refused
// TLS handshake (*AuthError), another protocol version, a duplicate
// consumer, a released partition, a frame size the producer cannot use.
func retriable(err error) bool {
	if errors.Is(err, ErrPartitionNotFound) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return false
	}
	return errors.Is(err, ErrConnectionLost)
}

// RequestBuffer implements ChannelHandler.
func (c *remoteChannel) RequestBuffer(dt wire.DataType, size int) (Buffer, error) {
	if size < 0 || size > c.g.env.pool.segmentSize {
		return Buffer{}, fmt.Errorf("%w: channel %s: buffer of %d bytes exceeds segment size %d", ErrProtocol, c.cid, size, c.g.env.pool.segmentSize)
	}
	if dt.IsEvent() {
		return NewUnpooledBuffer(make([]byte, size), dt), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return Buffer{}, ErrClosed
	}
	floating, err := c.rc.TakeForData()
	if err != nil {
		return Buffer{}, fmt.Errorf("%w: channel %s: %w", ErrProtocol, c.cid, err)
	}
	var s *segment
	if floating {
		s = c.availFloating[len(c.availFloating)-1]
		c.availFloating = c.availFloating[:len(c.availFloating)-1]
	} else {
		s = c.availExclusive[len(c.availExclusive)-1]
		c.availExclusive = c.availExclusive[:len(c.availExclusive)-1]
	}
	s.refs.Store(1)
	return bufferOf(s, 0, size, dt), nil
}

// OnBuffer implements ChannelHandler.
func (c *remoteChannel) OnBuffer(b Buffer, seq int32, backlog int) {
	c.mu.Lock()
	if c.released || c.err != nil {
		c.mu.Unlock()
		b.Release()
		return
	}
	if expected, ok := c.rc.CheckSequence(seq); !ok {
		c.mu.Unlock()
		b.Release()
		c.OnError(&ProtocolError{Peer: c.spec.Addr, Err: &SequenceError{Channel: c.cid, Expected: expected, Got: seq}})
		return
	}
	var giveBack *segment
	announce := false
	wasEmpty := c.received.len() == 0
	priority := b.DataType.IsPriority()
	if b.IsZero() {
		// An empty buffer: the producer handed back a credit it could not
		// use; the buffer it stood for is ready again.
		var release bool
		if release, announce = c.rc.EmptyBuffer(); release {
			giveBack = c.popFloating()
		}
	} else if priority {
		// Behind priority buffers that are already waiting, ahead of data.
		k := 0
		for k < c.received.len() && c.received.at(k).DataType.IsPriority() {
			k++
		}
		c.received.insert(k, b)
	} else {
		c.received.pushBack(b)
	}
	wantFloating := c.rc.OnBacklog(backlog) > 0
	c.mu.Unlock()

	if giveBack != nil {
		c.g.floating.recycle(giveBack)
	}
	if wantFloating {
		announce = c.requestFloating() || announce
	}
	if announce {
		c.announce()
	}
	if !b.IsZero() && (wasEmpty || priority) {
		c.g.notifyChannel(c.idx, priority)
	}
}

// OnBacklog implements ChannelHandler.
func (c *remoteChannel) OnBacklog(backlog int) {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	want := c.rc.OnBacklog(backlog) > 0
	c.mu.Unlock()
	if want && c.requestFloating() {
		c.announce()
	}
}

// TakeUnannouncedCredit implements ChannelHandler.
func (c *remoteChannel) TakeUnannouncedCredit() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return 0
	}
	return c.rc.TakeUnannounced()
}

// OnError implements ChannelHandler.
func (c *remoteChannel) OnError(err error) {
	c.mu.Lock()
	if c.released || c.err != nil {
		c.mu.Unlock()
		return
	}
	if retriable(err) && c.rc.Available() == c.rc.InitialCredit() && !c.receivedAnything() {
		if d, ok := c.retry.delay(); ok {
			link := c.link
			c.link = nil
			next := c.start
			if chk := c.g.cfg.PartitionStateChecker; chk != nil && errors.Is(err, ErrPartitionNotFound) {
				// Ask now; wait out the backoff only if told to retry.
				next, d = func() { c.checkPartitionState(chk, d) }, 0
			}
			c.timer = time.AfterFunc(d, next)
			c.mu.Unlock()
			c.g.count(&c.g.retries)
			if link != nil {
				link.Close()
			}
			c.g.env.log.Debug().Err(err).Str("addr", c.spec.Addr).Dur("retry_in", d).Msg("partition request retry")
			return
		}
		if errors.Is(err, ErrPartitionNotFound) {
			err = &PartitionNotFoundError{Partition: c.spec.Partition, Peer: c.spec.Addr, Waited: time.Since(c.retry.started)}
		}
	}
	c.err = err
	c.mu.Unlock()
	c.g.notifyChannel(c.idx, false)
}

// receivedAnything: a retry is only safe before the first buffer.
func (c *remoteChannel) receivedAnything() bool {
	return c.rc.CheckedAny()
}

func (c *remoteChannel) popFloating() *segment {
	n := len(c.availFloating)
	s := c.availFloating[n-1]
	c.availFloating = c.availFloating[:n-1]
	return s
}

// requestFloating asks the gate's pool for the floating buffers the
// backlog calls for; what the pool cannot give now arrives later through
// bufferAvailable. It reports whether credit must be announced.
func (c *remoteChannel) requestFloating() (announce bool) {
	for {
		c.mu.Lock()
		if c.released || c.rc.Listening() || c.rc.FloatingWanted() == 0 {
			c.mu.Unlock()
			return announce
		}
		c.rc.SetListening(true)
		c.mu.Unlock()
		b, ok := c.g.floating.requestOrListen(c)
		if !ok {
			return announce // registered; bufferAvailable takes over
		}
		c.mu.Lock()
		c.rc.SetListening(false)
		if c.released {
			c.mu.Unlock()
			b.Release()
			return false
		}
		c.availFloating = append(c.availFloating, b.seg)
		if c.rc.AddFloating(1) {
			announce = true
		}
		c.mu.Unlock()
	}
}

// bufferAvailable is the gate pool handing over a floating buffer.
func (c *remoteChannel) bufferAvailable(b Buffer) (accepted, needMore bool) {
	c.mu.Lock()
	if c.released || c.rc.FloatingWanted() == 0 {
		c.rc.SetListening(false)
		c.mu.Unlock()
		return false, false
	}
	c.availFloating = append(c.availFloating, b.seg)
	announce := c.rc.AddFloating(1)
	needMore = c.rc.FloatingWanted() > 0
	c.rc.SetListening(needMore)
	c.mu.Unlock()
	if announce {
		c.announce()
	}
	return true, needMore
}

func (c *remoteChannel) announce() {
	c.mu.Lock()
	link := c.link
	if link == nil {
		c.pendingAnnounce = true
	}
	c.mu.Unlock()
	if link != nil {
		link.NotifyCreditAvailable()
	}
}

// recycle takes back an exclusive segment once the consumer is done with
// it: it becomes credit again, or lets a surplus floating buffer go.
func (c *remoteChannel) recycle(s *segment) {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		s.owner = c.g.exclusive
		c.g.exclusive.recycle(s)
		return
	}
	c.availExclusive = append(c.availExclusive, s)
	release, announce := c.rc.Recycled()
	var giveBack *segment
	if release {
		giveBack = c.popFloating()
	}
	c.mu.Unlock()
	if giveBack != nil {
		c.g.floating.recycle(giveBack)
	}
	if announce {
		c.announce()
	}
}

func (c *remoteChannel) poll() (Buffer, bool, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.received.len() > 0 {
		b := c.received.popFront()
		return b, true, c.received.len() > 0 || c.err != nil, nil
	}
	if c.err != nil {
		return Buffer{}, false, false, c.err
	}
	if c.released {
		return Buffer{}, false, false, ErrClosed
	}
	return Buffer{}, false, false, nil
}

func (c *remoteChannel) currentLink() (ChannelLink, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return nil, ErrClosed
	}
	if c.link == nil {
		return nil, fmt.Errorf("%w: channel %d is not connected yet", ErrClosed, c.idx)
	}
	return c.link, nil
}

func (c *remoteChannel) resume() error {
	l, err := c.currentLink()
	if err != nil {
		return err
	}
	return l.ResumeConsumption()
}

func (c *remoteChannel) ackAllRecordsProcessed() error {
	l, err := c.currentLink()
	if err != nil {
		return err
	}
	return l.AckAllRecordsProcessed()
}

func (c *remoteChannel) sendTaskEvent(ev []byte) error {
	l, err := c.currentLink()
	if err != nil {
		return err
	}
	return l.SendTaskEvent(ev)
}

// release cancels the partition request and returns every buffer.
func (c *remoteChannel) release() {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	c.released = true
	link := c.link
	c.link = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	received := c.received.drain()
	excl, flt := c.availExclusive, c.availFloating
	c.availExclusive, c.availFloating = nil, nil
	listening := c.rc.Listening()
	c.mu.Unlock()

	if link != nil {
		link.Close()
	}
	if listening {
		c.g.floating.removeListener(c)
	}
	for _, b := range received {
		b.Release()
	}
	for _, s := range excl {
		s.owner = c.g.exclusive
		c.g.exclusive.recycle(s)
	}
	for _, s := range flt {
		c.g.floating.recycle(s)
	}
}

// checkPartitionState asks chk whether the producer of a missing
// partition may still come: retry after delay, or fail the channel now.
func (c *remoteChannel) checkPartitionState(chk PartitionStateChecker, delay time.Duration) {
	ctx, cancel := context.WithTimeout(c.g.ctx, max(delay, 100*time.Millisecond))
	err := chk.CheckPartitionState(ctx, c.spec.Partition)
	cancel()
	c.mu.Lock()
	if c.released || c.err != nil {
		c.mu.Unlock()
		return
	}
	if err == nil {
		c.timer = time.AfterFunc(delay, c.start)
		c.mu.Unlock()
		return
	}
	c.err = &PartitionNotFoundError{Partition: c.spec.Partition, Peer: c.spec.Addr, Waited: time.Since(c.retry.started), Cause: err}
	c.mu.Unlock()
	c.g.notifyChannel(c.idx, false)
}
