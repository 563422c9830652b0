package chanproto

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/compress"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Payload reads or skips the payload of the BufferResponse just read.
// *wire.Reader implements it.
type Payload interface {
	ReadPayload(dst []byte) error
	DiscardPayload() error
}

// Channel is the consumer side of one input channel on a connection. It
// implements exchange.ChannelLink except Close, which belongs to the
// transport (it calls MarkClosed and releases the connection).
//
// Handler calls are serialised, and none starts after MarkClosed or Fail.
type Channel struct {
	h         exchange.ChannelHandler
	Receiver  wire.ID
	Partition exchange.PartitionID
	Peer      string
	// Owner is the transport's own state of the channel (its stream).
	Owner   any
	q       *ControlQueue
	opts    wire.Options
	peerMax atomic.Int64

	mu           sync.Mutex  // serialises handler calls
	closed       atomic.Bool // failed or closed: no handler call starts
	linkClosed   atomic.Bool // MarkClosed was called
	creditQueued atomic.Bool // an AddCredit is queued on q

	dec *compress.Decompressor // made at the first compressed buffer (compression.go)
}

// NewChannel returns the consumer side of req's channel to peer, whose
// messages go out through q. The producer's frame limit starts as opts'
// own and is updated by SetPeerMaxFrame once known.
func NewChannel(h exchange.ChannelHandler, req exchange.ChannelRequest, peer string, q *ControlQueue, opts wire.Options) *Channel {
	c := &Channel{h: h, Receiver: wire.ID(req.Receiver), Partition: req.Partition, Peer: peer, q: q, opts: opts}
	c.peerMax.Store(int64(opts.EffectiveMaxFrameSize()))
	return c
}

// SetPeerMaxFrame records the largest frame the producer accepts (from its
// Hello).
func (c *Channel) SetPeerMaxFrame(n int) { c.peerMax.Store(int64(n)) }

// Closed reports whether the channel failed or was closed.
func (c *Channel) Closed() bool { return c.closed.Load() }

// MarkClosed ends handler calls for a link being closed; it reports
// whether this was the first call (the transport then releases its
// resources).
func (c *Channel) MarkClosed() bool {
	c.closed.Store(true)
	return c.linkClosed.CompareAndSwap(false, true)
}

// call runs f, a handler call, unless the channel is closed.
func (c *Channel) call(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false
	}
	f()
	return true
}

// Fail fails the channel with err (the handler's OnError) unless it is
// already failed or closed; it reports whether it did.
func (c *Channel) Fail(err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Swap(true) {
		return false
	}
	c.h.OnError(err)
	return true
}

// Deliver hands one inbound frame of the channel to its handler, reading
// or skipping a BufferResponse's payload through p. It returns
// failed=true when the channel failed (refused buffer, ErrorResponse; the
// handler has been told, err is why): the transport forgets the channel.
// Otherwise a non-nil err is a read or framing error of the connection
// (or stream).
func (c *Channel) Deliver(m wire.Message, p Payload) (failed bool, err error) {
	switch m := m.(type) {
	case *wire.BufferResponse:
		return c.deliverBuffer(m, p)
	case *wire.BacklogAnnouncement:
		backlog := int(m.Backlog)
		c.call(func() { c.h.OnBacklog(backlog) })
		return false, nil
	case *wire.ErrorResponse:
		msg := *m
		msg.ReceiverID = c.Receiver
		ferr := exchange.ErrorFromWire(c.Peer, c.Partition, &msg)
		c.Fail(ferr)
		return true, ferr
	}
	return false, fmt.Errorf("%w: unexpected %s from the producer", wire.ErrUnknownMessage, m.ID())
}

func (c *Channel) deliverBuffer(m *wire.BufferResponse, p Payload) (bool, error) {
	size := int(m.Size)
	seq, backlog := m.Sequence, int(m.Backlog)
	if size == 0 && !m.DataType.IsEvent() {
		// An empty data buffer hands back credit the producer could not use.
		c.call(func() { c.h.OnBuffer(exchange.Buffer{}, seq, backlog) })
		return false, nil
	}
	var buf exchange.Buffer
	err := exchange.ErrClosed
	c.call(func() { buf, err = c.h.RequestBuffer(m.DataType, size) })
	if err == nil && len(buf.Bytes()) < size {
		buf.Release()
		err = fmt.Errorf("%w: handler returned a %d-byte buffer for a %d-byte payload", exchange.ErrProtocol, len(buf.Bytes()), size)
	}
	if err != nil {
		if derr := p.DiscardPayload(); derr != nil {
			return false, derr
		}
		if errors.Is(err, exchange.ErrClosed) {
			return false, nil // the channel is being released: a normal race
		}
		ferr := &exchange.ProtocolError{Peer: c.Peer, Err: err}
		c.Fail(ferr)
		return true, ferr
	}
	if err := p.ReadPayload(buf.Bytes()[:size]); err != nil {
		buf.Release()
		return false, err
	}
	if m.Compressed {
		if buf, err = c.decompress(buf, m.DataType); err != nil {
			ferr := &exchange.ProtocolError{Peer: c.Peer, Err: err}
			c.Fail(ferr)
			return true, ferr
		}
	}
	if !c.call(func() { c.h.OnBuffer(buf, seq, backlog) }) {
		buf.Release()
	}
	return false, nil
}

// NotifyCreditAvailable implements exchange.ChannelLink: it queues one
// AddCredit unless one is queued; the handler's unannounced credit is
// taken when it is written, so credit that accumulates meanwhile goes out
// in one message.
func (c *Channel) NotifyCreditAvailable() {
	if c.closed.Load() || !c.creditQueued.CompareAndSwap(false, true) {
		return
	}
	if c.q.push(op{kind: opCredit, ch: c}) != nil {
		c.creditQueued.Store(false)
	}
}

func (c *Channel) send(o op) error {
	if c.linkClosed.Load() {
		return exchange.ErrClosed
	}
	if c.closed.Load() {
		return fmt.Errorf("%w: channel %s has failed", exchange.ErrClosed, c.Receiver)
	}
	o.ch = c
	return c.q.push(o)
}

// ResumeConsumption implements exchange.ChannelLink.
func (c *Channel) ResumeConsumption() error { return c.send(op{kind: opResume}) }

// AckAllRecordsProcessed implements exchange.ChannelLink.
func (c *Channel) AckAllRecordsProcessed() error { return c.send(op{kind: opAck}) }

// SendTaskEvent implements exchange.ChannelLink. An event whose frame
// exceeds the producer's maximum frame size is refused with an error
// matching exchange.ErrRecordTooLarge; the channel goes on.
func (c *Channel) SendTaskEvent(event []byte) error {
	m := wire.TaskEventRequest{Event: event}
	if n, limit := wire.FrameLen(&m, c.opts), c.peerMax.Load(); int64(n) > limit {
		return fmt.Errorf("%w: task event of %d bytes: frame of %d bytes exceeds the producer's maximum frame size %d", exchange.ErrRecordTooLarge, len(event), n, limit)
	}
	return c.send(op{kind: opEvent, data: append([]byte(nil), event...)})
}

// NewBufferSize implements exchange.ChannelLink.
func (c *Channel) NewBufferSize(size int) error {
	if size <= 0 || size > math.MaxInt32 {
		return &exchange.ConfigError{Field: "buffer size", Value: size, Reason: "must be in 1..2^31-1"}
	}
	return c.send(op{kind: opBufferSize, n: int32(size)})
}

// PeerHello checks the first message of a connection (TCP) or stream
// (QUIC): the peer's Hello. It returns the largest frame the peer
// accepts; an error wraps wire.ErrProtocol (wire.ErrVersionMismatch for
// another protocol version). A producer passes the largest frame it
// sends as need: a peer that accepts less is refused at once, before
// any partition is touched, with an error that also matches
// exchange.ErrInsufficientBuffers (0: no requirement).
func PeerHello(m wire.Message, need int) (maxFrame int, err error) {
	h, ok := m.(*wire.Hello)
	if !ok {
		return 0, fmt.Errorf("%w: %s first, want Hello", wire.ErrUnknownMessage, m.ID())
	}
	if err := wire.CheckHello(*h); err != nil {
		return 0, err
	}
	if int64(h.MaxFrameSize) < int64(need) {
		return 0, fmt.Errorf("%w: %w: the peer accepts frames of up to %d bytes, this node sends up to %d (use the same SegmentSize on every node)",
			wire.ErrInvalidField, exchange.ErrInsufficientBuffers, h.MaxFrameSize, need)
	}
	return int(h.MaxFrameSize), nil
}

// ErrorCode is the code of the ErrorResponse that answers err, a
// violation found before any channel exists (a Hello or a request).
func ErrorCode(err error) wire.ErrorCode {
	switch {
	case errors.Is(err, wire.ErrVersionMismatch):
		return wire.CodeVersionMismatch
	case errors.Is(err, exchange.ErrInsufficientBuffers):
		return wire.CodeInsufficientCapacity
	}
	return wire.CodeProtocol
}
