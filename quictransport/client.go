package quictransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
	"github.com/qexchange/qexchange/exchange/wire"
)

// clientConn is one connection to a remote node, shared by the channels
// to it (chanproto.Peers counts their references).
type clientConn struct {
	t    *Transport
	addr string
	q    *chanproto.ControlQueue // the consumer messages of every channel on it

	ready chan struct{} // closed when the dial finished
	err   error         // set before ready is closed

	mu   sync.Mutex
	conn *quic.Conn // set before ready is closed, nil if err
	idle bool       // the last channel left
	dead bool       // the connection ended: new channels dial anew
}

func (t *Transport) newClientConn(addr string) *clientConn {
	cc := &clientConn{t: t, addr: addr, ready: make(chan struct{}), q: chanproto.NewControlQueue()}
	t.node.Go(cc.dial)
	return cc
}

// Ready, DialErr, Usable and CloseIdle make clientConn a chanproto.PeerConn.
func (cc *clientConn) Ready() <-chan struct{} { return cc.ready }

func (cc *clientConn) DialErr() error {
	if cc.err == nil {
		return nil
	}
	return cc.t.connError(cc.addr, cc.err)
}

func (cc *clientConn) Usable() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return !cc.dead && !cc.idle
}

// CloseIdle closes the connection with ConnCodeUnused, not on the
// caller's goroutine (CloseWithError waits for the connection's loop, and
// ChannelLink.Close must not block on the network). A connection still
// dialing is closed by dial.
func (cc *clientConn) CloseIdle() {
	cc.mu.Lock()
	cc.idle = true
	conn := cc.conn
	cc.mu.Unlock()
	if conn != nil {
		cc.t.goTracked(func() { conn.CloseWithError(ConnCodeUnused, "last channel released") })
	}
}

func (cc *clientConn) dial() {
	t := cc.t
	conn, err := cc.dialConn()
	if err != nil {
		cc.err = err
		cc.q.Stop(cc.DialErr())
		cc.mu.Lock()
		cc.dead = true
		cc.mu.Unlock()
		close(cc.ready)
		t.log.Debug().Err(err).Str("peer", cc.addr).Msg("dial failed")
		return
	}
	cc.mu.Lock()
	cc.conn = conn
	idle := cc.idle
	cc.mu.Unlock()
	close(cc.ready)
	if idle {
		conn.CloseWithError(ConnCodeUnused, "no channels")
		return
	}
	t.log.Debug().Str("peer", cc.addr).Msg("connected")
	for done := false; !done; {
		select {
		case <-cc.q.Wake():
			if t.peers.Refs(cc) > 1 {
				cc.t.gather()
			}
			cc.writeControl()
		case <-conn.Context().Done():
			done = true
		}
	}
	cc.q.Stop(t.connError(cc.addr, context.Cause(conn.Context())))
	cc.mu.Lock()
	cc.dead = true
	cc.mu.Unlock()
	t.peers.Forget(cc)
	t.log.Debug().Err(context.Cause(conn.Context())).Str("peer", cc.addr).Msg("connection ended")
}

func (cc *clientConn) dialConn() (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(cc.t.ctx, 2*cc.t.cfg.HandshakeTimeout)
	defer cancel()
	return cc.t.dial(ctx, cc.addr, ALPN)
}

// waitConn waits for the dial and returns the connection (nil if it
// failed).
func (cc *clientConn) waitConn() *quic.Conn {
	<-cc.ready
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.conn
}

// OpenChannel implements exchange.Transport: it opens a stream on the
// (shared) connection to addr, sends Hello and the PartitionRequest on it
// and starts the stream's reader and control writer.
func (t *Transport) OpenChannel(ctx context.Context, addr string, req exchange.ChannelRequest, h exchange.ChannelHandler) (exchange.ChannelLink, error) {
	cc, err := t.peers.Acquire(ctx, addr, wire.ID(req.Receiver))
	if err != nil {
		return nil, err
	}
	conn := cc.waitConn()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.peers.Release(cc)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, t.connError(addr, err)
	}
	s := &clientStream{
		Channel: chanproto.NewChannel(h, req, addr, cc.q, t.opts),
		t:       t, cc: cc, conn: conn, str: str,
	}
	s.Owner = s
	hello := wire.NewHello(t.opts)
	pr := wire.PartitionRequest{PartitionID: wire.ID(req.Partition), Subpartition: int32(req.Subpartition), Credit: int32(req.InitialCredit)}
	fail := func(err error) (exchange.ChannelLink, error) {
		s.MarkClosed()
		s.abort(StreamCodeCancelled)
		t.peers.Release(cc)
		return nil, err
	}
	if err := wire.Validate(&pr, t.opts); err != nil {
		return fail(fmt.Errorf("quictransport: partition request: %w", err))
	}
	b := wire.AppendFrame(make([]byte, 0, 128), &hello, t.opts)
	b = wire.AppendFrame(b, &pr, t.opts)
	if _, err := str.Write(b); err != nil {
		return fail(t.connError(addr, err))
	}
	if !t.goTracked(s.readLoop) {
		return fail(exchange.ErrClosed)
	}
	return s, nil
}

// clientStream is one input channel's stream: it implements
// exchange.ChannelLink.
type clientStream struct {
	*chanproto.Channel
	t    *Transport
	cc   *clientConn
	conn *quic.Conn
	str  *quic.Stream

	wmu     sync.Mutex
	pending []byte // encoded control frames not yet handed to quic-go
	writing bool   // a goroutine is writing pending with a blocking Write
	dirty   bool   // listed for the connection's writer (writer only)
}

// readLoop reads what the producer sends on the stream and delivers it
// to the channel.
func (s *clientStream) readLoop() {
	fr := newFrameReader(s.str, s.t.opts)
	err := s.readHello(fr)
	for err == nil {
		var m wire.Message
		if m, err = fr.next(clientAccepts); err != nil {
			break
		}
		var failed bool
		if failed, err = s.Deliver(m, fr); failed {
			code := StreamCodeCancelled
			if errors.As(err, new(*exchange.ProtocolError)) {
				code = StreamCodeProtocol // this side refused what arrived
			}
			s.abort(code)
			return
		}
	}
	s.finish(err)
}

func (s *clientStream) readHello(fr *frameReader) error {
	m, err := fr.next(nil)
	if err != nil {
		return err
	}
	peerMax, err := chanproto.PeerHello(m, 0)
	if err == nil {
		s.SetPeerMaxFrame(peerMax)
	}
	return err
}

// clientAccepts: the messages a producer may send on a stream (after
// its Hello).
func clientAccepts(id wire.MsgID) bool {
	switch id {
	case wire.IDBufferResponse, wire.IDBacklogAnnouncement, wire.IDErrorResponse:
		return true
	}
	return false
}

// finish ends the stream after the reader stopped with err, failing the
// channel with the matching typed error.
func (s *clientStream) finish(err error) {
	code := StreamCodeCancelled
	var fail error
	var se *quic.StreamError
	switch {
	case errors.Is(err, wire.ErrProtocol):
		// The producer sent garbage (or a Hello of another version).
		code = StreamCodeProtocol
		fail = &exchange.ProtocolError{Peer: s.Peer, Err: err}
	case errors.Is(err, io.EOF):
		fail = &exchange.RemoteError{Peer: s.Peer, Channel: exchange.ChannelID(s.Receiver), Message: "producer closed the stream"}
	case errors.As(err, &se) && s.conn.Context().Err() == nil:
		// The producer reset the stream without an ErrorResponse.
		fail = &exchange.RemoteError{Peer: s.Peer, Channel: exchange.ChannelID(s.Receiver), Message: fmt.Sprintf("producer reset the stream (code %#x)", uint64(se.ErrorCode))}
	default:
		fail = s.t.connError(s.Peer, err)
	}
	if s.Fail(fail) {
		s.t.log.Debug().Err(fail).Str("peer", s.Peer).Msg("channel failed")
	}
	s.abort(code)
}

// abort cancels both directions of the stream.
func (s *clientStream) abort(code quic.StreamErrorCode) {
	s.str.CancelRead(code)
	s.str.CancelWrite(code)
}

// writeControl writes the consumers' queued messages (AddCredit, ...),
// on the connection's goroutine. The frames of all streams are queued
// back to back with TryWriteAll, so that quic-go packs the small control
// frames of many streams into shared packets; a stream whose frames QUIC
// flow control holds back gets a goroutine with a blocking Write, and its
// later frames follow it there, in order.
func (cc *clientConn) writeControl() {
	var dirty []*clientStream
	cc.q.Drain(func(ch *chanproto.Channel, m wire.Message) {
		s := ch.Owner.(*clientStream)
		s.wmu.Lock()
		s.pending = wire.AppendFrame(s.pending, m, cc.t.opts)
		s.wmu.Unlock()
		if !s.dirty {
			s.dirty = true
			dirty = append(dirty, s)
		}
	})
	for _, s := range dirty {
		s.dirty = false
		s.flushControl()
	}
}

func (s *clientStream) flushControl() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.writing || len(s.pending) == 0 {
		return
	}
	err := s.str.TryWriteAll(s.pending)
	if !errors.Is(err, quic.ErrWouldBlock) {
		// Written, or the stream failed (its reader reports it).
		s.pending = s.pending[:0]
		if cap(s.pending) > 64<<10 {
			s.pending = nil // a large task event; do not keep its memory
		}
		return
	}
	buf := s.pending
	s.pending, s.writing = nil, true
	if !s.t.goTracked(func() { s.writeBlocked(buf) }) {
		s.writing = false
	}
}

// writeBlocked writes buf and then whatever was queued meanwhile.
func (s *clientStream) writeBlocked(buf []byte) {
	for {
		_, err := s.str.Write(buf)
		s.wmu.Lock()
		if err != nil || len(s.pending) == 0 {
			s.pending, s.writing = nil, false
			s.wmu.Unlock()
			return
		}
		buf, s.pending = s.pending, nil
		s.wmu.Unlock()
	}
}

// Close implements exchange.ChannelLink: it resets the stream in both
// directions with StreamCodeCancelled (the producer releases its view)
// and releases the channel's share of the connection. No handler call
// starts after Close returns. It does not wait for the stream's
// goroutines (it may be called from a handler call); Transport.Close does.
func (s *clientStream) Close() error {
	if s.MarkClosed() {
		s.abort(StreamCodeCancelled)
		s.t.peers.Release(s.cc)
	}
	return nil
}
