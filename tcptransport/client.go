package tcptransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// clientConn is one connection to a remote node (Flink's
// NettyPartitionRequestClient with its CreditBasedPartitionRequestClientHandler):
// shared by every channel to that node, reference counted by the channels'
// links. A reader goroutine routes frames by receiverId; a writer goroutine
// sends the queued client messages.
type clientConn struct {
	t    *Transport
	key  string
	addr string // the peer, as dialed

	ready   chan struct{} // closed once dialing finished
	dialErr error         // set before ready is closed
	nc      net.Conn      // set (under mu) before ready is closed
	peerMax int           // the largest frame the server accepts

	refs int // guarded by t.mu

	mu      sync.Mutex
	chans   map[wire.ID]*clientChannel
	recent  recentSet
	tasks   []ctask
	broken  error // the connection failed or is shut down
	closing bool  // the last channel left: CloseRequest, then close
	wake    chan struct{}
	done    chan struct{} // closed when run returns

	// Writer-owned scratch messages, kept here so that encoding them
	// does not allocate.
	wPartReq wire.PartitionRequest
	wCredit  wire.AddCredit
	wResume  wire.ResumeConsumption
	wAck     wire.AckAllUserRecordsProcessed
	wCancel  wire.CancelPartitionRequest
	wBufSize wire.NewBufferSize
	wEvent   wire.TaskEventRequest
}

type taskKind uint8

const (
	taskRequest taskKind = iota
	taskCredit
	taskResume
	taskAck
	taskEvent
	taskBufferSize
	taskCancel
)

// ctask is a message queued for the client's writer.
type ctask struct {
	kind taskKind
	ch   *clientChannel
	n    int32 // credit (request), buffer size
	sub  int32
	data []byte
}

func newClientConn(t *Transport, key, addr string) *clientConn {
	return &clientConn{
		t: t, key: key, addr: addr,
		ready: make(chan struct{}),
		chans: make(map[wire.ID]*clientChannel),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
}

func (c *clientConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *clientConn) isBroken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken != nil || c.closing
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
	var re *exchange.RemoteError
	if errors.As(cause, &re) {
		return cause
	}
	return &exchange.ConnectionError{Peer: c.addr, Err: cause}
}

// run dials, shakes hands, starts the writer and reads until the
// connection ends.
func (c *clientConn) run() {
	t := c.t
	defer t.wg.Done()
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
		t.mu.Lock()
		if t.clients[c.key] == c {
			delete(t.clients, c.key)
		}
		t.mu.Unlock()
		close(c.ready)
		t.log.Debug().Err(err).Str("peer", c.addr).Msg("connect failed")
		return
	}
	t.stats.dialed.Add(1)
	t.log.Debug().Str("peer", c.addr).Str("local", nc.LocalAddr().String()).Msg("connected")
	close(c.ready)
	t.wg.Add(1)
	go c.writeLoop()
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
		if isProtocolErr(err) {
			return nil, nil, 0, &exchange.ProtocolError{Peer: c.addr, Err: fmt.Errorf("handshake: %w", err)}
		}
		return nil, nil, 0, fmt.Errorf("handshake: %w", causeOf(err))
	}
	var peerMax int
	switch m := m.(type) {
	case *wire.Hello:
		if err := wire.CheckHello(*m); err != nil {
			code := wire.CodeProtocol
			if errors.Is(err, wire.ErrVersionMismatch) {
				code = wire.CodeVersionMismatch
			}
			t.writeFatal(nc, code, err)
			nc.Close()
			return nil, nil, 0, &exchange.ProtocolError{Peer: c.addr, Err: fmt.Errorf("handshake: %w", err)}
		}
		peerMax = int(m.MaxFrameSize)
	case *wire.ErrorResponse:
		nc.Close()
		msg := *m
		msg.Fatal = true
		return nil, nil, 0, exchange.ErrorFromWire(c.addr, exchange.PartitionID{}, &msg)
	default:
		nc.Close()
		return nil, nil, 0, &exchange.ProtocolError{Peer: c.addr, Err: fmt.Errorf("%w: handshake: expected Hello, got %s", wire.ErrProtocol, m.ID())}
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

// readPayload reads a payload of len(dst) bytes in place and caps the
// next header read if it was large.
func (r *frameReader) readPayload(dst []byte) error {
	r.src.capped = false
	err := r.ReadPayload(dst)
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
		switch m := m.(type) {
		case *wire.BufferResponse:
			ch, recent := c.lookup(m.ReceiverID)
			if ch == nil {
				if !recent {
					return fmt.Errorf("%w: BufferResponse for unknown receiver %s", wire.ErrProtocol, m.ReceiverID)
				}
				if err := rd.DiscardPayload(); err != nil {
					return err
				}
				continue
			}
			st.buffersReceived.Add(1)
			size := int(m.Size)
			if size == 0 && m.DataType == wire.DataBuffer {
				ch.h.OnBuffer(exchange.Buffer{}, m.Sequence, int(m.Backlog))
				continue
			}
			buf, err := ch.h.RequestBuffer(m.DataType, size)
			if err == nil && len(buf.Bytes()) < size {
				buf.Release()
				err = fmt.Errorf("%w: handler returned a %d-byte buffer for a %d-byte payload", exchange.ErrProtocol, len(buf.Bytes()), size)
			}
			if err != nil {
				if derr := rd.DiscardPayload(); derr != nil {
					return derr
				}
				if errors.Is(err, exchange.ErrClosed) {
					continue // the channel is being released: a normal race
				}
				c.t.log.Warn().Err(err).Str("peer", c.addr).Str("receiver", m.ReceiverID.String()).Msg("failing channel: bad BufferResponse")
				c.failChannel(ch, &exchange.ProtocolError{Peer: c.addr, Err: err}, true)
				continue
			}
			if err := rd.readPayload(buf.Bytes()[:size]); err != nil {
				buf.Release()
				return err
			}
			st.payloadBytesRecvd.Add(int64(size))
			ch.h.OnBuffer(buf, m.Sequence, int(m.Backlog))
		case *wire.BacklogAnnouncement:
			ch, recent := c.lookup(m.ReceiverID)
			if ch == nil {
				if !recent {
					return fmt.Errorf("%w: BacklogAnnouncement for unknown receiver %s", wire.ErrProtocol, m.ReceiverID)
				}
				continue
			}
			ch.h.OnBacklog(int(m.Backlog))
		case *wire.ErrorResponse:
			if m.Fatal {
				msg := *m
				return exchange.ErrorFromWire(c.addr, exchange.PartitionID{}, &msg)
			}
			ch, recent := c.lookup(m.ReceiverID)
			if ch == nil {
				if !recent {
					return fmt.Errorf("%w: ErrorResponse for unknown receiver %s", wire.ErrProtocol, m.ReceiverID)
				}
				continue
			}
			c.failChannel(ch, exchange.ErrorFromWire(c.addr, ch.part, m), false)
		default:
			return fmt.Errorf("%w: unexpected %s from the server", wire.ErrProtocol, m.ID())
		}
	}
}

// failChannel fails one channel and forgets it; with cancel it also
// cancels the partition request.
func (c *clientConn) failChannel(ch *clientChannel, err error, cancel bool) {
	c.mu.Lock()
	if c.chans[ch.id] != ch {
		c.mu.Unlock()
		return
	}
	delete(c.chans, ch.id)
	c.recent.add(ch.id)
	ch.closed.Store(true)
	if cancel && c.broken == nil && !c.closing {
		c.tasks = append(c.tasks, ctask{kind: taskCancel, ch: ch})
	}
	c.mu.Unlock()
	c.signal()
	ch.h.OnError(err)
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
	c.signal()
	c.nc.Close()
	t.mu.Lock()
	if t.clients[c.key] == c {
		delete(t.clients, c.key)
	}
	t.mu.Unlock()
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
		ch.closed.Store(true)
		e := ferr
		if isRemote {
			r := *re
			r.Channel = exchange.ChannelID(ch.id)
			e = &r
		}
		ch.h.OnError(e)
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
	c.signal()
	if nc != nil {
		nc.Close()
	}
}

// closeGracefully is called when the last channel left.
func (c *clientConn) closeGracefully() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.signal()
}

// push queues a task for the writer.
func (c *clientConn) push(tk ctask) error {
	c.mu.Lock()
	if c.broken != nil {
		err := c.broken
		c.mu.Unlock()
		return c.connError(causeOf(err))
	}
	c.tasks = append(c.tasks, tk)
	c.mu.Unlock()
	c.signal()
	return nil
}

// writeLoop sends the queued messages, many per write.
func (c *clientConn) writeLoop() {
	defer c.t.wg.Done()
	var (
		buf          []byte
		tasks, spare []ctask
	)
	o := c.t.wopts
	for {
		c.mu.Lock()
		for len(c.tasks) == 0 && c.broken == nil && !c.closing {
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
		}
		if c.broken != nil {
			c.mu.Unlock()
			return
		}
		tasks, c.tasks = c.tasks, spare[:0]
		closing := c.closing
		c.mu.Unlock()

		buf = buf[:0]
		for i := range tasks {
			buf = c.encode(buf, &tasks[i], o)
			tasks[i] = ctask{}
		}
		spare = tasks
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
	}
}

func (c *clientConn) encode(buf []byte, tk *ctask, o wire.Options) []byte {
	ch := tk.ch
	if tk.kind == taskCancel {
		c.wCancel.ReceiverID = ch.id
		return wire.AppendFrame(buf, &c.wCancel, o)
	}
	if ch.closed.Load() {
		return buf
	}
	switch tk.kind {
	case taskRequest:
		c.wPartReq = wire.PartitionRequest{PartitionID: wire.ID(ch.part), Subpartition: tk.sub, ReceiverID: ch.id, Credit: tk.n}
		buf = wire.AppendFrame(buf, &c.wPartReq, o)
	case taskCredit:
		ch.creditQueued.Store(false)
		if n := ch.h.TakeUnannouncedCredit(); n > 0 {
			c.wCredit = wire.AddCredit{ReceiverID: ch.id, Credit: int32(n)}
			buf = wire.AppendFrame(buf, &c.wCredit, o)
		}
	case taskResume:
		c.wResume.ReceiverID = ch.id
		buf = wire.AppendFrame(buf, &c.wResume, o)
	case taskAck:
		c.wAck.ReceiverID = ch.id
		buf = wire.AppendFrame(buf, &c.wAck, o)
	case taskBufferSize:
		c.wBufSize = wire.NewBufferSize{ReceiverID: ch.id, BufferSize: tk.n}
		buf = wire.AppendFrame(buf, &c.wBufSize, o)
	case taskEvent:
		c.wEvent = wire.TaskEventRequest{PartitionID: wire.ID(ch.part), ReceiverID: ch.id, Event: tk.data}
		buf = wire.AppendFrame(buf, &c.wEvent, o)
		c.wEvent.Event = nil
	}
	return buf
}

// clientChannel is one input channel on a client connection; it is the
// channel's exchange.ChannelLink.
type clientChannel struct {
	c    *clientConn
	id   wire.ID
	part exchange.PartitionID
	h    exchange.ChannelHandler

	creditQueued atomic.Bool // an AddCredit task is queued
	closed       atomic.Bool // no longer routed (failed or closed)
	linkClosed   atomic.Bool // Close was called
}

func (ch *clientChannel) send(tk ctask) error {
	if ch.linkClosed.Load() {
		return exchange.ErrClosed
	}
	if ch.closed.Load() {
		return fmt.Errorf("%w: tcptransport: channel %s has failed", exchange.ErrClosed, ch.id)
	}
	tk.ch = ch
	return ch.c.push(tk)
}

// NotifyCreditAvailable implements exchange.ChannelLink: it queues one
// AddCredit; the writer takes the handler's unannounced credit when it
// writes it, so credit that accumulates meanwhile goes out in one message.
func (ch *clientChannel) NotifyCreditAvailable() {
	if ch.closed.Load() || ch.linkClosed.Load() {
		return
	}
	if ch.creditQueued.CompareAndSwap(false, true) {
		if ch.c.push(ctask{kind: taskCredit, ch: ch}) != nil {
			ch.creditQueued.Store(false)
		}
	}
}

// ResumeConsumption implements exchange.ChannelLink.
func (ch *clientChannel) ResumeConsumption() error { return ch.send(ctask{kind: taskResume}) }

// AckAllRecordsProcessed implements exchange.ChannelLink.
func (ch *clientChannel) AckAllRecordsProcessed() error { return ch.send(ctask{kind: taskAck}) }

// SendTaskEvent implements exchange.ChannelLink. The event must fit one
// frame of the producer's maximum size.
func (ch *clientChannel) SendTaskEvent(event []byte) error {
	m := wire.TaskEventRequest{Event: event}
	if n, lim := wire.FrameLen(&m, ch.c.t.wopts), ch.c.peerMax; n > lim {
		return configErr("task event", len(event), fmt.Sprintf("frame of %d bytes exceeds the producer's maximum of %d", n, lim))
	}
	return ch.send(ctask{kind: taskEvent, data: append([]byte(nil), event...)})
}

// NewBufferSize implements exchange.ChannelLink.
func (ch *clientChannel) NewBufferSize(size int) error {
	if size <= 0 || size > 1<<30 {
		return configErr("buffer size", size, "must be in 1..1 GiB")
	}
	return ch.send(ctask{kind: taskBufferSize, n: int32(size)})
}

// Close implements exchange.ChannelLink: it cancels the partition request
// (if the channel is still open) and releases the channel's reference to
// the connection, closing it if it was the last.
func (ch *clientChannel) Close() error {
	if !ch.linkClosed.CompareAndSwap(false, true) {
		return nil
	}
	c := ch.c
	c.mu.Lock()
	if c.chans[ch.id] == ch {
		delete(c.chans, ch.id)
		c.recent.add(ch.id)
		if c.broken == nil {
			c.tasks = append(c.tasks, ctask{kind: taskCancel, ch: ch})
		}
	}
	ch.closed.Store(true)
	c.mu.Unlock()
	c.signal()
	c.t.release(c)
	return nil
}
