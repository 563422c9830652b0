package quictransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

	ready chan struct{} // closed when the dial finished
	err   error         // set before ready is closed

	mu   sync.Mutex
	conn *quic.Conn // set before ready is closed, nil if err
	idle bool       // the last channel left
	dead bool       // the connection ended: new channels dial anew
}

func (t *Transport) newClientConn(addr string) *clientConn {
	cc := &clientConn{t: t, addr: addr, ready: make(chan struct{})}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		cc.dial()
	}()
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
	<-conn.Context().Done()
	cc.mu.Lock()
	cc.dead = true
	cc.mu.Unlock()
	t.peers.Forget(cc)
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
	return t.tr.Dial(ctx, ua, t.tls.clientConfig(host, ALPN), t.quicConfig(false))
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
	q := chanproto.NewControlQueue()
	s := &clientStream{
		Channel: chanproto.NewChannel(h, req, addr, q, t.opts),
		t:       t, cc: cc, conn: conn, str: str, q: q,
		quit: make(chan struct{}),
	}
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
	s.wbuf = b[:0]
	if !t.goTracked(s.readLoop) {
		return fail(exchange.ErrClosed)
	}
	if !t.goTracked(s.controlLoop) {
		// The reader sees the cancelled stream and ends.
		s.abort(StreamCodeCancelled)
		s.Close()
		return nil, exchange.ErrClosed
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
	q    *chanproto.ControlQueue

	quit     chan struct{}
	quitOnce sync.Once
	wbuf     []byte // control goroutine only
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
	peerMax, err := chanproto.PeerHello(m)
	if err == nil {
		s.SetPeerMaxFrame(peerMax)
	}
	return err
}

// clientAccepts: the messages a producer may send on a stream.
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

// abort cancels both directions of the stream and stops the control
// goroutine.
func (s *clientStream) abort(code quic.StreamErrorCode) {
	s.str.CancelRead(code)
	s.str.CancelWrite(code)
	s.quitOnce.Do(func() { close(s.quit) })
}

// controlLoop writes the consumer's messages (AddCredit, ...) in the
// order they were queued.
func (s *clientStream) controlLoop() {
	for {
		select {
		case <-s.q.Wake():
		case <-s.quit:
			return
		}
		b := s.q.AppendFrames(s.wbuf[:0], s.t.opts)
		s.wbuf = b
		if len(b) == 0 {
			continue
		}
		if _, err := s.str.Write(b); err != nil {
			return // the reader sees the stream or connection fail and reports it
		}
		if cap(s.wbuf) > 64<<10 {
			s.wbuf = nil // a large task event; do not keep its memory
		}
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
