package tcptransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/wire"
)

// clientConn is one connection to a remote node (Flink's
// NettyPartitionRequestClient with its CreditBasedPartitionRequestClientHandler):
// shared by every channel to that node, reference counted by
// chanproto.Peers. A reader goroutine routes frames by receiverId; a
// writer goroutine sends the channels' queued messages.
type clientConn struct {
	t    *Transport
	addr string // the peer, as dialed
	q    *chanproto.ControlQueue

	ready   chan struct{} // closed once dialing finished
	dialErr error         // set before ready is closed
	nc      net.Conn      // set (under mu) before ready is closed
	peerMax int           // the largest frame the server accepts

	mu      sync.Mutex
	chans   map[wire.ID]*clientChannel
	recent  recentSet
	broken  error         // the connection failed or is shut down
	closing bool          // the last channel left: CloseRequest, then close
	done    chan struct{} // closed when run returns
}

func newClientConn(t *Transport, addr string) *clientConn {
	c := &clientConn{
		t: t, addr: addr, q: chanproto.NewControlQueue(),
		ready: make(chan struct{}),
		chans: make(map[wire.ID]*clientChannel),
		done:  make(chan struct{}),
	}
	t.node.Go(c.run)
	return c
}

// Ready, DialErr, Usable and CloseIdle make clientConn a chanproto.PeerConn.
func (c *clientConn) Ready() <-chan struct{} { return c.ready }
func (c *clientConn) DialErr() error         { return c.dialErr }
func (c *clientConn) Usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken == nil && !c.closing
}

// connError is the error channels fail with when the connection breaks
// for cause.
func (c *clientConn) connError(cause error) error {
	switch {
	case errors.Is(cause, exchange.ErrClosed):
		return fmt.Errorf("%w (connection to %s)", cause, c.addr)
	case isProtocolErr(cause):
		var pe *exchange.ProtocolError
		if errors.As(cause, &pe) {
			return cause
		}
		return &exchange.ProtocolError{Peer: c.addr, Err: cause}
	}
	var (
		re *exchange.RemoteError
		ae *exchange.AuthError
	)
	if errors.As(cause, &re) || errors.As(cause, &ae) {
		return cause
	}
	return &exchange.ConnectionError{Peer: c.addr, Err: cause}
}

// run dials, shakes hands, starts the writer and reads until the
// connection ends.
func (c *clientConn) run() {
	t := c.t
	defer close(c.done)
	nc, rd, peerMax, err := c.connect()
	c.mu.Lock()
	if err == nil && c.broken != nil { // the transport closed meanwhile
		err = c.broken
		nc.Close()
	}
	if err != nil {
		if c.broken == nil {
			c.broken = err
		}
	} else {
		c.nc, c.peerMax = nc, peerMax
	}
	c.mu.Unlock()
	if err != nil {
		c.dialErr = c.connError(err)
		close(c.ready)
		t.log.Debug().Err(err).Str("peer", c.addr).Msg("connect failed")
		return
	}
	t.stats.dialed.Add(1)
	t.log.Debug().Str("peer", c.addr).Str("local", nc.LocalAddr().String()).Msg("connected")
	close(c.ready)
	t.node.Go(c.writeLoop)
	c.teardown(c.readLoop(rd))
}

// connect dials addr and exchanges Hellos (client first).
func (c *clientConn) connect() (net.Conn, *frameReader, int, error) {
	t := c.t
	nc, err := t.dial(t.ctx, c.addr)
	if err != nil {
		if t.ctx.Err() != nil {
			return nil, nil, 0, errTransportClosed
		}
		return nil, nil, 0, fmt.Errorf("dial: %w", err)
	}
	if err := t.tune(nc); err != nil {
		nc.Close()
		if errors.Is(err, exchange.ErrInvalidConfig) {
			return nil, nil, 0, err
		}
		return nil, nil, 0, fmt.Errorf("socket options: %w", err)
	}
	// Close aborts the handshake by closing nc: watch t.ctx meanwhile.
	stop := context.AfterFunc(t.ctx, func() { nc.Close() })
	defer stop()
	if nc, err = c.clientTLS(t.ctx, nc); err != nil {
		return nil, nil, 0, err
	}
	_ = nc.SetDeadline(time.Now().Add(t.cfg.ConnectTimeout))
	hello := wire.AppendFrame(nil, wire.NewHello(t.wopts), t.wopts)
	if _, err := nc.Write(hello); err != nil {
		nc.Close()
		return nil, nil, 0, fmt.Errorf("sending Hello: %w", err)
	}
	src := &frameSource{r: nc}
	rd := wire.NewReader(src, t.wopts)
	m, err := rd.Next()
	if err != nil {
		nc.Close()
		if t.tls != nil && tlsconf.IsHandshakeFailure(err) {
			// TLS 1.3: the server's refusal of our certificate arrives
			// with the first read.
			return nil, nil, 0, &exchange.AuthError{Peer: c.addr, Err: err}
		}
		if isProtocolErr(err) {
			return nil, nil, 0, &exchange.ProtocolError{Peer: c.addr, Err: fmt.Errorf("handshake: %w", err)}
		}
		return nil, nil, 0, fmt.Errorf("handshake: %w", causeOf(err))
	}
	if e, ok := m.(*wire.ErrorResponse); ok {
		nc.Close()
		msg := *e
		msg.Fatal = true
		return nil, nil, 0, exchange.ErrorFromWire(c.addr, exchange.PartitionID{}, &msg)
	}
	peerMax, err := chanproto.PeerHello(m, 0)
	if err != nil {
		if m.ID() == wire.IDHello { // a Hello we cannot speak: say why
			t.writeFatal(nc, fatalCode(err), err)
		}
		nc.Close()
		return nil, nil, 0, &exchange.ProtocolError{Peer: c.addr, Err: fmt.Errorf("handshake: %w", err)}
	}
	if t.ctx.Err() != nil {
		nc.Close()
		return nil, nil, 0, errTransportClosed
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, &frameReader{Reader: rd, src: src}, peerMax, nil
}

// headerReadCap bounds the reads that fetch frame headers after a large
// payload (see frameSource).
const headerReadCap = 1 << 10

// largePayload is the payload size from which the next header read is
// capped.
const largePayload = 4 << 10

// frameSource is the client's socket as the frame reader sees it. The
// reader's 64 KiB buffer would otherwise swallow the next payloads with
// each header it fetches, and every payload byte would be copied out of
// it; when payloads are large, header reads are capped so that payloads
// are read straight into the channels' buffers (ReadPayload reads them
// from the source, past the buffer). With small payloads the full buffer
// is used, fetching many frames per read.
type frameSource struct {
	r      io.Reader
	capped bool
}

func (s *frameSource) Read(p []byte) (int, error) {
	if s.capped && len(p) > headerReadCap {
		p = p[:headerReadCap]
	}
	return s.r.Read(p)
}

// frameReader is a wire.Reader over a frameSource.
type frameReader struct {
	*wire.Reader
	src *frameSource
}

// ReadPayload reads a payload of len(dst) bytes in place and caps the
// next header read if it was large.
func (r *frameReader) ReadPayload(dst []byte) error {
	r.src.capped = false
	err := r.Reader.ReadPayload(dst)
	r.src.capped = len(dst) >= largePayload
	return err
}

// lookup returns the channel of id, or nil and whether id was released
// recently (frames for it are then dropped).
func (c *clientConn) lookup(id wire.ID) (ch *clientChannel, recent bool) {
	c.mu.Lock()
	ch = c.chans[id]
	if ch == nil {
		recent = c.recent.has(id)
	}
	c.mu.Unlock()
	return ch, recent
}

// readLoop routes the server's frames to the channels until an error.
func (c *clientConn) readLoop(rd *frameReader) error {
	st := &c.t.stats
	for {
		m, err := rd.Next()
		if err != nil {
			return err
		}
		var id wire.ID
		switch m := m.(type) {
		case *wire.BufferResponse:
			id = m.ReceiverID
		case *wire.BacklogAnnouncement:
			id = m.ReceiverID
		case *wire.ErrorResponse:
			if m.Fatal {
				msg := *m
				return exchange.ErrorFromWire(c.addr, exchange.PartitionID{}, &msg)
			}
			id = m.ReceiverID
		default:
			return fmt.Errorf("%w: unexpected %s from the server", wire.ErrProtocol, m.ID())
		}
		ch, recent := c.lookup(id)
		if ch == nil {
			if !recent {
				return fmt.Errorf("%w: %s for unknown receiver %s", wire.ErrProtocol, m.ID(), id)
			}
			if err := rd.DiscardPayload(); err != nil {
				return err
			}
			continue
		}
		failed, err := ch.Deliver(m, rd)
		if failed {
			if errors.Is(err, exchange.ErrProtocol) && !errors.Is(err, exchange.ErrRemote) {
				c.t.log.Warn().Err(err).Str("peer", c.addr).Str("receiver", id.String()).Msg("failing channel: bad BufferResponse")
			}
			c.forget(ch)
			continue
		}
		if err != nil {
			return err
		}
		if br, ok := m.(*wire.BufferResponse); ok {
			st.buffersReceived.Add(1)
			st.payloadBytesRecvd.Add(int64(br.Size))
		}
	}
}

// forget stops routing frames to ch and cancels its partition request.
func (c *clientConn) forget(ch *clientChannel) {
	c.mu.Lock()
	mine := c.chans[ch.Receiver] == ch
	if mine {
		delete(c.chans, ch.Receiver)
		c.recent.add(ch.Receiver)
	}
	c.mu.Unlock()
	if mine {
		c.q.Cancel(ch.Channel)
	}
}

// teardown ends the connection after the reader stopped with err and
// fails every channel still on it.
func (c *clientConn) teardown(err error) {
	t := c.t
	c.mu.Lock()
	graceful := c.closing && c.broken == nil
	if c.broken == nil {
		c.broken = err
	}
	cause := c.broken
	chans := c.chans
	c.chans = map[wire.ID]*clientChannel{}
	c.mu.Unlock()
	c.q.Stop(c.connError(causeOf(cause)))
	c.nc.Close()
	t.peers.Forget(c)
	if len(chans) == 0 && (graceful || errors.Is(cause, exchange.ErrClosed)) {
		t.log.Debug().Str("peer", c.addr).Msg("connection closed")
		return
	}
	ferr := c.connError(causeOf(cause))
	if isProtocolErr(cause) {
		t.log.Warn().Err(ferr).Str("peer", c.addr).Int("channels", len(chans)).Msg("closing connection")
	} else {
		t.log.Debug().Err(ferr).Str("peer", c.addr).Int("channels", len(chans)).Msg("connection lost")
	}
	var re *exchange.RemoteError
	isRemote := errors.As(ferr, &re)
	for _, ch := range chans {
		e := ferr
		if isRemote {
			r := *re
			r.Channel = exchange.ChannelID(ch.Receiver)
			e = &r
		}
		ch.Fail(e)
	}
}

// shutdown closes the connection because the transport closes.
func (c *clientConn) shutdown() {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = errTransportClosed
	}
	nc := c.nc
	c.mu.Unlock()
	c.q.Stop(c.connError(errTransportClosed))
	if nc != nil {
		nc.Close()
	}
}

// CloseIdle implements chanproto.PeerConn: the last channel left, so the
// writer sends CloseRequest and closes.
func (c *clientConn) CloseIdle() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.q.Signal()
}

// writeLoop sends the queued messages, many per write.
func (c *clientConn) writeLoop() {
	var buf []byte
	o := c.t.wopts
	for {
		buf = c.q.AppendFrames(buf[:0], o)
		c.mu.Lock()
		broken, closing := c.broken, c.closing
		c.mu.Unlock()
		if broken != nil {
			return
		}
		if closing {
			buf = wire.AppendFrame(buf, wire.CloseRequest{}, o)
		}
		if len(buf) > 0 {
			c.t.stats.clientWrites.Add(1)
			if _, err := c.nc.Write(buf); err != nil {
				c.nc.Close() // the reader sees it and tears down
				return
			}
		}
		if closing {
			c.nc.Close()
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil // a large task event; do not keep its memory
		}
		<-c.q.Wake()
	}
}

// clientChannel is one input channel on a client connection; it is the
// channel's exchange.ChannelLink.
type clientChannel struct {
	*chanproto.Channel
	c *clientConn
}

// Close implements exchange.ChannelLink: it cancels the partition request
// (if the channel is still open) and releases the channel's reference to
// the connection, closing it if it was the last.
func (ch *clientChannel) Close() error {
	if !ch.MarkClosed() {
		return nil
	}
	ch.c.forget(ch)
	ch.c.t.peers.Release(ch.c)
	return nil
}
