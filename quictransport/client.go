package quictransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// clientConn is the connection to one remote node, shared by every
// channel to it and reference counted.
type clientConn struct {
	t    *Transport
	addr string

	ready chan struct{} // closed when the dial finished
	conn  *quic.Conn    // set before ready is closed, nil if err
	err   error

	// Under t.mu.
	refs int
	dead bool // removed from t.conns: new channels dial anew
}

// OpenChannel implements exchange.Transport: it opens a stream on the
// (shared) connection to addr, sends Hello and the PartitionRequest on it
// and starts the stream's reader and control writer.
func (t *Transport) OpenChannel(ctx context.Context, addr string, req exchange.ChannelRequest, h exchange.ChannelHandler) (exchange.ChannelLink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cc, err := t.acquire(addr)
	if err != nil {
		return nil, err
	}
	select {
	case <-cc.ready:
	case <-ctx.Done():
		cc.release()
		return nil, ctx.Err()
	}
	if cc.err != nil {
		cc.release()
		return nil, t.connError(addr, cc.err)
	}
	str, err := cc.conn.OpenStreamSync(ctx)
	if err != nil {
		cc.release()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, t.connError(addr, err)
	}
	s := &clientStream{
		t: t, cc: cc, str: str, h: h, req: req, peer: addr,
		wake: make(chan struct{}, 1), quit: make(chan struct{}),
	}
	s.peerMax.Store(int64(t.opts.EffectiveMaxFrameSize()))
	hello := wire.NewHello(t.opts)
	pr := wire.PartitionRequest{PartitionID: wire.ID(req.Partition), Subpartition: int32(req.Subpartition), Credit: int32(req.InitialCredit)}
	if err := wire.Validate(&pr, t.opts); err != nil {
		s.abort(StreamCodeCancelled)
		cc.release()
		return nil, fmt.Errorf("quictransport: partition request: %w", err)
	}
	b := wire.AppendFrame(make([]byte, 0, 128), &hello, t.opts)
	b = wire.AppendFrame(b, &pr, t.opts)
	if _, err := str.Write(b); err != nil {
		s.abort(StreamCodeCancelled)
		cc.release()
		return nil, t.connError(addr, err)
	}
	s.wbuf = b[:0]
	if !t.goTracked(s.readLoop) {
		s.abort(StreamCodeCancelled)
		cc.release()
		return nil, exchange.ErrClosed
	}
	if !t.goTracked(s.controlLoop) {
		// The reader sees the cancelled stream and ends.
		s.abort(StreamCodeCancelled)
		s.Close()
		return nil, exchange.ErrClosed
	}
	return s, nil
}

// acquire returns the connection to addr with a reference taken, starting
// a dial if there is none.
func (t *Transport) acquire(addr string) (*clientConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, exchange.ErrClosed
	}
	cc := t.conns[addr]
	if cc == nil || cc.dead {
		cc = &clientConn{t: t, addr: addr, ready: make(chan struct{})}
		t.conns[addr] = cc
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			cc.dial()
		}()
	}
	cc.refs++
	return cc, nil
}

func (cc *clientConn) dial() {
	t := cc.t
	conn, err := cc.dialConn()
	if err != nil {
		cc.err = err
		t.mu.Lock()
		cc.dead = true
		if t.conns[cc.addr] == cc {
			delete(t.conns, cc.addr)
		}
		t.mu.Unlock()
		close(cc.ready)
		t.log.Debug().Err(err).Str("peer", cc.addr).Msg("dial failed")
		return
	}
	cc.conn = conn
	close(cc.ready)
	t.mu.Lock()
	unused := cc.refs == 0 || t.closed
	if unused {
		cc.dead = true
		if t.conns[cc.addr] == cc {
			delete(t.conns, cc.addr)
		}
	}
	t.mu.Unlock()
	if unused {
		conn.CloseWithError(ConnCodeUnused, "no channels")
		return
	}
	t.log.Debug().Str("peer", cc.addr).Msg("connected")
	// Watch the connection: once it is gone, new channels dial anew.
	<-conn.Context().Done()
	t.mu.Lock()
	cc.dead = true
	if t.conns[cc.addr] == cc {
		delete(t.conns, cc.addr)
	}
	t.mu.Unlock()
	t.log.Debug().Err(context.Cause(conn.Context())).Str("peer", cc.addr).Msg("connection ended")
}

func (cc *clientConn) dialConn() (*quic.Conn, error) {
	t := cc.t
	host, _, err := net.SplitHostPort(cc.addr)
	if err != nil {
		return nil, fmt.Errorf("quictransport: bad address %q: %w", cc.addr, err)
	}
	ua, err := net.ResolveUDPAddr("udp", cc.addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(t.ctx, 2*t.cfg.HandshakeTimeout)
	defer cancel()
	return t.tr.Dial(ctx, ua, t.tls.clientConfig(host), t.cfg.quicConfig(false))
}

// waitConn waits for the dial and returns the connection (nil if it
// failed).
func (cc *clientConn) waitConn() *quic.Conn {
	<-cc.ready
	return cc.conn
}

// release drops one channel's reference; the last one closes the
// connection with ConnCodeUnused.
func (cc *clientConn) release() {
	t := cc.t
	t.mu.Lock()
	cc.refs--
	last := cc.refs == 0
	if last {
		cc.dead = true
		if t.conns[cc.addr] == cc {
			delete(t.conns, cc.addr)
		}
	}
	t.mu.Unlock()
	if !last {
		return
	}
	select {
	case <-cc.ready:
	default:
		return // dial() closes it when it completes
	}
	if cc.conn == nil {
		return
	}
	// CloseWithError waits for the connection's loop: not on the caller's
	// goroutine (ChannelLink.Close must not block on the network). If the
	// transport is closing, Close closes the connection itself.
	conn := cc.conn
	t.goTracked(func() { conn.CloseWithError(ConnCodeUnused, "last channel released") })
}

// Control operations a consumer queues for its stream.
type opKind uint8

const (
	opCredit opKind = iota
	opResume
	opAck
	opEvent
	opBufferSize
)

type ctrlOp struct {
	kind opKind
	n    int
	data []byte
}

// clientStream is one input channel's stream: it implements
// exchange.ChannelLink.
type clientStream struct {
	t    *Transport
	cc   *clientConn
	str  *quic.Stream
	h    exchange.ChannelHandler
	req  exchange.ChannelRequest
	peer string

	// hmu serializes handler calls (reader goroutine, and
	// TakeUnannouncedCredit on the control goroutine).
	hmu     sync.Mutex
	closed  atomic.Bool // ChannelLink.Close called: no more handler calls
	peerMax atomic.Int64

	mu        sync.Mutex
	ops       []ctrlOp
	spare     []ctrlOp
	creditOp  bool // an opCredit is queued
	wake      chan struct{}
	quit      chan struct{}
	quitOnce  sync.Once
	closeOnce sync.Once
	wbuf      []byte // control goroutine only
}

// errStop ends a stream's reader without a handler call (the handler was
// already told, or the link is closed).
var errStop = errors.New("quictransport: stream stopped")

// readLoop reads what the producer sends on the stream and delivers it
// to the handler.
func (s *clientStream) readLoop() {
	fr := newFrameReader(s.str, s.t.opts)
	err := s.readHello(fr)
	for err == nil {
		err = s.readOne(fr)
	}
	s.finish(err)
}

func (s *clientStream) readHello(fr *frameReader) error {
	m, err := fr.next(clientAccepts)
	if err != nil {
		return err
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		return fmt.Errorf("%w: stream starts with %s, want Hello", wire.ErrUnknownMessage, m.ID())
	}
	if err := wire.CheckHello(*h); err != nil {
		return err
	}
	s.peerMax.Store(int64(h.MaxFrameSize))
	return nil
}

// clientAccepts: the messages a producer may send on a stream.
func clientAccepts(id wire.MsgID) bool {
	switch id {
	case wire.IDBufferResponse, wire.IDBacklogAnnouncement, wire.IDErrorResponse, wire.IDHello:
		return true
	}
	return false
}

func (s *clientStream) readOne(fr *frameReader) error {
	m, err := fr.next(clientAccepts)
	if err != nil {
		return err
	}
	switch m := m.(type) {
	case *wire.BufferResponse:
		size := int(m.Size)
		seq, backlog := m.Sequence, int(m.Backlog)
		if size == 0 && !m.DataType.IsEvent() {
			return s.call(func() { s.h.OnBuffer(exchange.Buffer{}, seq, backlog) })
		}
		var buf exchange.Buffer
		var rerr error
		if err := s.call(func() { buf, rerr = s.h.RequestBuffer(m.DataType, size) }); err != nil {
			return err
		}
		if rerr != nil {
			if errors.Is(rerr, exchange.ErrClosed) {
				return errStop
			}
			return &localError{err: rerr}
		}
		dst := buf.Bytes()
		if len(dst) != size {
			buf.Release()
			return &localError{err: fmt.Errorf("%w: RequestBuffer(%d) returned %d bytes", exchange.ErrProtocol, size, len(dst))}
		}
		if err := fr.readPayload(dst); err != nil {
			buf.Release()
			return err
		}
		s.hmu.Lock()
		if s.closed.Load() {
			s.hmu.Unlock()
			buf.Release()
			return errStop
		}
		s.h.OnBuffer(buf, seq, backlog)
		s.hmu.Unlock()
		return nil
	case *wire.BacklogAnnouncement:
		backlog := int(m.Backlog)
		return s.call(func() { s.h.OnBacklog(backlog) })
	case *wire.ErrorResponse:
		m.ReceiverID = wire.ID(s.req.Receiver)
		err := exchange.ErrorFromWire(s.peer, s.req.Partition, m)
		_ = s.call(func() { s.h.OnError(err) })
		return errStop
	}
	return fmt.Errorf("%w: unexpected %s from the producer", wire.ErrUnknownMessage, m.ID())
}

// localError: this side refused what the peer sent (RequestBuffer
// failed); err already says why.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// call runs a handler call unless the link is closed.
func (s *clientStream) call(f func()) error {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	if s.closed.Load() {
		return errStop
	}
	f()
	return nil
}

// finish ends the stream after the reader stopped with err, failing the
// channel with the matching typed error.
func (s *clientStream) finish(err error) {
	code := StreamCodeCancelled
	var fail error
	var se *quic.StreamError
	switch {
	case err == nil || errors.Is(err, errStop):
	case errors.Is(err, wire.ErrProtocol):
		// The producer sent garbage (or a Hello of another version).
		code = StreamCodeProtocol
		fail = &exchange.ProtocolError{Peer: s.peer, Err: err}
	case errors.As(err, new(*localError)):
		code = StreamCodeProtocol
		fail = &exchange.ProtocolError{Peer: s.peer, Err: err}
	case errors.Is(err, io.EOF):
		fail = &exchange.RemoteError{Peer: s.peer, Channel: s.req.Receiver, Message: "producer closed the stream"}
	case errors.As(err, &se) && !s.isConnErr():
		// The producer reset the stream without an ErrorResponse.
		fail = &exchange.RemoteError{Peer: s.peer, Channel: s.req.Receiver, Message: fmt.Sprintf("producer reset the stream (code %#x)", uint64(se.ErrorCode))}
	default:
		fail = s.t.connError(s.peer, err)
	}
	if fail != nil {
		s.t.log.Debug().Err(fail).Str("peer", s.peer).Msg("channel failed")
		_ = s.call(func() { s.h.OnError(fail) })
	}
	s.abort(code)
}

// isConnErr reports whether the stream failed because its connection did.
func (s *clientStream) isConnErr() bool {
	select {
	case <-s.cc.conn.Context().Done():
		return true
	default:
		return false
	}
}

// abort cancels both directions of the stream and stops the control
// goroutine.
func (s *clientStream) abort(code quic.StreamErrorCode) {
	s.str.CancelRead(code)
	s.str.CancelWrite(code)
	s.quitOnce.Do(func() { close(s.quit) })
}

func (s *clientStream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *clientStream) queue(op ctrlOp) error {
	if s.closed.Load() {
		return exchange.ErrClosed
	}
	s.mu.Lock()
	s.ops = append(s.ops, op)
	s.mu.Unlock()
	s.signal()
	return nil
}

// controlLoop writes the consumer's messages (AddCredit, ...) in the
// order they were queued. AddCredit asks the handler for the credit when
// it is written, so credit announced in between goes out in one message.
func (s *clientStream) controlLoop() {
	for {
		select {
		case <-s.wake:
		case <-s.quit:
			return
		}
		s.mu.Lock()
		ops := s.ops
		s.ops = s.spare[:0]
		s.creditOp = false
		s.mu.Unlock()
		b := s.wbuf[:0]
		for i, op := range ops {
			switch op.kind {
			case opCredit:
				var n int
				if s.call(func() { n = s.h.TakeUnannouncedCredit() }) == nil && n > 0 {
					m := wire.AddCredit{Credit: int32(min(n, 1<<31-1))}
					b = wire.AppendFrame(b, &m, s.t.opts)
				}
			case opResume:
				m := wire.ResumeConsumption{}
				b = wire.AppendFrame(b, &m, s.t.opts)
			case opAck:
				m := wire.AckAllUserRecordsProcessed{}
				b = wire.AppendFrame(b, &m, s.t.opts)
			case opEvent:
				m := wire.TaskEventRequest{PartitionID: wire.ID(s.req.Partition), Event: op.data}
				b = wire.AppendFrame(b, &m, s.t.opts)
			case opBufferSize:
				m := wire.NewBufferSize{BufferSize: int32(op.n)}
				b = wire.AppendFrame(b, &m, s.t.opts)
			}
			ops[i] = ctrlOp{}
		}
		s.mu.Lock()
		s.spare = ops[:0]
		s.mu.Unlock()
		s.wbuf = b
		if len(b) == 0 {
			continue
		}
		if _, err := s.str.Write(b); err != nil {
			// The reader sees the stream or connection fail and reports it.
			return
		}
		if cap(s.wbuf) > 64<<10 {
			s.wbuf = nil // a large task event; do not keep its memory
		}
	}
}

// NotifyCreditAvailable implements exchange.ChannelLink. It never blocks:
// it queues one AddCredit (if none is queued) for the control goroutine.
func (s *clientStream) NotifyCreditAvailable() {
	if s.closed.Load() {
		return
	}
	s.mu.Lock()
	queued := s.creditOp
	if !queued {
		s.creditOp = true
		s.ops = append(s.ops, ctrlOp{kind: opCredit})
	}
	s.mu.Unlock()
	if !queued {
		s.signal()
	}
}

// ResumeConsumption implements exchange.ChannelLink.
func (s *clientStream) ResumeConsumption() error { return s.queue(ctrlOp{kind: opResume}) }

// AckAllRecordsProcessed implements exchange.ChannelLink.
func (s *clientStream) AckAllRecordsProcessed() error { return s.queue(ctrlOp{kind: opAck}) }

// SendTaskEvent implements exchange.ChannelLink. The event must fit the
// producer's maximum frame size.
func (s *clientStream) SendTaskEvent(event []byte) error {
	m := wire.TaskEventRequest{Event: event}
	if n, limit := wire.FrameLen(&m, s.t.opts), s.peerMax.Load(); int64(n) > limit {
		return fmt.Errorf("%w: task event of %d bytes: frame of %d bytes exceeds the producer's maximum frame size %d", exchange.ErrRecordTooLarge, len(event), n, limit)
	}
	return s.queue(ctrlOp{kind: opEvent, data: append([]byte(nil), event...)})
}

// NewBufferSize implements exchange.ChannelLink.
func (s *clientStream) NewBufferSize(size int) error {
	if size <= 0 || size > 1<<31-1 {
		return &exchange.ConfigError{Field: "buffer size", Value: size, Reason: "must be positive"}
	}
	return s.queue(ctrlOp{kind: opBufferSize, n: size})
}

// Close implements exchange.ChannelLink: it resets the stream in both
// directions with StreamCodeCancelled (the producer releases its reader)
// and releases the channel's share of the connection. No handler call
// starts after Close returns. It does not wait for the stream's
// goroutines (it may be called from a handler call); Transport.Close does.
func (s *clientStream) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.abort(StreamCodeCancelled)
		s.cc.release()
	})
	return nil
}
