package tcptransport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
	"github.com/qexchange/qexchange/exchange/wire"
)

// serverConn is the server side of one accepted connection (Flink's
// PartitionRequestServerHandler and PartitionRequestQueue): a reader
// goroutine decodes the client's messages and one writer goroutine serves
// the ready channels round-robin (chanproto.Scheduler), coalescing their
// frames into batched writes.
type serverConn struct {
	t        *Transport
	nc       net.Conn
	peer     string
	provider exchange.ViewProvider
	peerMax  int // the largest frame the client accepts
	sched    *chanproto.Scheduler

	mu      sync.Mutex
	outs    map[wire.ID]*chanproto.Outbound
	recent  recentSet
	ctrl    []byte // encoded frames queued by the reader goroutine
	closing bool

	writerDone chan struct{}
	done       chan struct{} // closed when serve returns

	// Writer-owned state, reused across batches.
	hb      []byte       // frame headers (and whole control frames) of a batch
	segs    []payloadSeg // payloads, by the end offset of their header in hb
	backing net.Buffers
	wbuf    net.Buffers
	frames  int
}

type payloadSeg struct {
	end int // offset in hb where the payload goes
	buf exchange.Buffer
}

func newServerConn(t *Transport, nc net.Conn, p exchange.ViewProvider) *serverConn {
	return &serverConn{
		t: t, nc: nc, peer: nc.RemoteAddr().String(), provider: p,
		sched: chanproto.NewScheduler(),
		outs:  make(map[wire.ID]*chanproto.Outbound),
		done:  make(chan struct{}),
	}
}

// errDuplicateReceiver: a second PartitionRequest for an active receiverId.
var errDuplicateReceiver = fmt.Errorf("%w: duplicate receiverId", wire.ErrProtocol)

// errIdle: the connection held no channel for IdleConnectionTimeout.
var errIdle = errors.New("tcptransport: idle connection")

// errControlFlood: the peer does not read the refusals it provokes.
var errControlFlood = errors.New("tcptransport: too many queued control frames")

// errCloseRequest: the client asked to close.
var errCloseRequest = errors.New("client sent CloseRequest")

func fatalCode(err error) wire.ErrorCode {
	if errors.Is(err, errDuplicateReceiver) {
		return wire.CodeDuplicateReceiver
	}
	return chanproto.ErrorCode(err)
}

func (c *serverConn) serve() {
	t := c.t
	defer t.admit.Leave(c.nc.RemoteAddr().String())
	defer close(c.done)
	if err := c.serverTLS(); err != nil {
		c.nc.Close()
		return
	}
	rd, err := c.handshake()
	if err != nil {
		if !t.isClosed() {
			ev := t.log.Debug()
			if isProtocolErr(err) {
				ev = t.log.Warn()
			}
			ev.Err(err).Str("peer", c.peer).Msg("handshake failed; closing connection")
		}
		c.nc.Close()
		return
	}
	t.log.Debug().Str("peer", c.peer).Msg("accepted connection")
	c.mu.Lock()
	c.armIdleLocked()
	c.mu.Unlock()
	c.writerDone = make(chan struct{})
	go c.writeLoop()
	c.teardown(c.readLoop(rd))
}

// handshake reads the client's Hello and answers with ours.
func (c *serverConn) handshake() (*wire.Reader, error) {
	t := c.t
	_ = c.nc.SetDeadline(time.Now().Add(t.cfg.ConnectTimeout))
	rd := wire.NewReader(c.nc, t.wopts)
	m, err := rd.Next()
	if err == nil {
		c.peerMax, err = chanproto.PeerHello(m, t.maxFrame)
	}
	if err != nil {
		if !isProtocolErr(err) {
			return nil, fmt.Errorf("handshake with %s: %w", c.peer, causeOf(err))
		}
		t.writeFatal(c.nc, fatalCode(err), err)
		return nil, &exchange.ProtocolError{Peer: c.peer, Err: fmt.Errorf("handshake: %w", err)}
	}
	hello := wire.AppendFrame(nil, wire.NewHello(t.wopts), t.wopts)
	if _, err := c.nc.Write(hello); err != nil {
		return nil, fmt.Errorf("handshake with %s: %w", c.peer, err)
	}
	_ = c.nc.SetDeadline(time.Time{})
	return rd, nil
}

// writeFatal sends a fatal ErrorResponse, best effort.
func (t *Transport) writeFatal(nc net.Conn, code wire.ErrorCode, err error) {
	b := wire.AppendFrame(nil, &wire.ErrorResponse{Fatal: true, Code: code, Message: err.Error()}, t.wopts)
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = nc.Write(b)
}

// readLoop handles the client's messages until an error or CloseRequest.
// A violation that belongs to one channel fails that channel only
// (docs/architecture.md, "failure policy").
func (c *serverConn) readLoop(rd *wire.Reader) error {
	for {
		m, err := rd.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("%w: no channel for %v (IdleConnectionTimeout)", errIdle, c.t.cfg.IdleConnectionTimeout)
			}
			return err
		}
		switch m := m.(type) {
		case *wire.PartitionRequest:
			if err := c.open(m); err != nil {
				return err
			}
			continue
		case *wire.CancelPartitionRequest:
			c.cancel(m.ReceiverID)
			continue
		case *wire.CloseRequest:
			return errCloseRequest
		}
		id, ok := chanproto.ReceiverOf(m)
		if !ok {
			return fmt.Errorf("%w: unexpected %s from a client", wire.ErrProtocol, m.ID())
		}
		o, err := c.outbound(id, m.ID())
		if err != nil {
			return err
		}
		if o == nil {
			continue
		}
		if _, verr := o.Apply(m); verr != nil {
			c.t.log.Warn().Err(verr).Str("peer", c.peer).Str("receiver", id.String()).Msg("bad input on a channel; only this channel is failed")
			c.forget(o)
			o.Fail(verr)
		}
	}
}

// outbound returns the channel of id: nil without error for a recently
// released one, a protocol error for an id never requested here.
func (c *serverConn) outbound(id wire.ID, msg wire.MsgID) (*chanproto.Outbound, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.outs[id]; o != nil {
		return o, nil
	}
	if c.recent.has(id) {
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %s for unknown receiver %s (never requested on this connection)", wire.ErrProtocol, msg, id)
}

func (c *serverConn) open(m *wire.PartitionRequest) error {
	id := m.ReceiverID
	c.mu.Lock()
	_, dup := c.outs[id]
	c.mu.Unlock()
	if dup {
		return fmt.Errorf("%w: second PartitionRequest for receiver %s on one connection", errDuplicateReceiver, id)
	}
	o := chanproto.NewOutbound(id, m.PartitionID, c.peer, c.t.wopts, c.peerMax, c.sched.Ready)
	err := o.Open(c.provider, exchange.ViewRequest{
		Partition:     exchange.PartitionID(m.PartitionID),
		Subpartition:  int(m.Subpartition),
		Receiver:      exchange.ChannelID(id),
		InitialCredit: int(m.Credit),
		Peer:          c.peer,
	})
	if err != nil {
		c.t.log.Debug().Err(err).Str("peer", c.peer).Str("receiver", id.String()).Msg("partition request refused")
		c.mu.Lock()
		c.recent.add(id)
		c.ctrl = wire.AppendFrame(c.ctrl, chanproto.Refusal(id, err), c.t.wopts)
		queued := len(c.ctrl)
		c.mu.Unlock()
		if queued > c.t.cfg.MaxControlBytes {
			// The peer sends requests and does not read the answers.
			c.t.log.Warn().Str("peer", c.peer).Int("queued_bytes", queued).Int("max", c.t.cfg.MaxControlBytes).
				Msg("closing connection: the peer does not read its refusals (MaxControlBytes)")
			return fmt.Errorf("%w: %d bytes of refusals queued for a peer that does not read (MaxControlBytes %d)", errControlFlood, queued, c.t.cfg.MaxControlBytes)
		}
		c.sched.Signal()
		return nil
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		o.Release()
		return nil
	}
	c.outs[id] = o
	c.recent.remove(id)
	if len(c.outs) == 1 {
		_ = c.nc.SetReadDeadline(time.Time{}) // holds a channel: not idle
	}
	c.mu.Unlock()
	return nil
}

// armIdleLocked starts the idle timeout of a connection that holds no
// channel (Config.IdleConnectionTimeout); c.mu is held, so that it is
// ordered with open's disarming.
func (c *serverConn) armIdleLocked() {
	if d := c.t.cfg.IdleConnectionTimeout; d > 0 && len(c.outs) == 0 && !c.closing {
		_ = c.nc.SetReadDeadline(time.Now().Add(d))
	}
}

// forget stops routing the client's messages to o.
func (c *serverConn) forget(o *chanproto.Outbound) {
	c.mu.Lock()
	if c.outs[o.Receiver] == o {
		delete(c.outs, o.Receiver)
		c.recent.add(o.Receiver)
		c.armIdleLocked()
	}
	c.mu.Unlock()
}

// cancel releases the channel of id (CancelPartitionRequest); unknown ids
// are ignored: cancel races with the channel's own end.
func (c *serverConn) cancel(id wire.ID) {
	c.mu.Lock()
	o := c.outs[id]
	if o != nil {
		delete(c.outs, id)
		c.recent.add(id)
		c.armIdleLocked()
	}
	c.mu.Unlock()
	if o != nil {
		o.Release()
	}
}

// teardown ends the connection after the reader goroutine stopped with
// err: a protocol error is answered with a fatal ErrorResponse; every
// reader of the connection is released.
func (c *serverConn) teardown(err error) {
	t := c.t
	closed := t.isClosed()
	fatal := isProtocolErr(err) && !closed
	// Log before anything is closed, so that a peer that sees the end of
	// the connection can find the reason in the log.
	if fatal {
		t.log.Warn().Err(&exchange.ProtocolError{Peer: c.peer, Err: err}).Str("peer", c.peer).Msg("closing connection after bad input")
	} else if !closed && errors.Is(err, errIdle) {
		t.log.Info().Err(err).Str("peer", c.peer).Msg("closing idle connection")
	} else if !closed && err != errCloseRequest {
		t.log.Debug().Err(causeOf(err)).Str("peer", c.peer).Msg("connection ended")
	}
	c.mu.Lock()
	c.closing = true
	outs := c.outs
	c.outs = nil
	if fatal {
		resp := wire.ErrorResponse{Fatal: true, Code: fatalCode(err), Message: err.Error()}
		c.ctrl = wire.AppendFrame(c.ctrl, &resp, t.wopts)
	}
	c.mu.Unlock()
	c.sched.Close()
	if fatal {
		// The writer flushes the ErrorResponse, then closes; the deadline
		// bounds a peer that does not read.
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	} else {
		c.nc.Close()
	}
	for _, o := range outs {
		o.Release()
	}
	<-c.writerDone
	c.nc.Close()
}

// writeLoop is the connection's single writer: it serves queued control
// frames and ready channels, round-robin, batching up to WriteBatchBytes
// per write.
func (c *serverConn) writeLoop() {
	defer close(c.writerDone)
	for {
		c.mu.Lock()
		closing := c.closing
		c.hb = append(c.hb[:0], c.ctrl...)
		c.ctrl = c.ctrl[:0]
		c.mu.Unlock()
		if closing {
			if len(c.hb) > 0 {
				_, _ = c.nc.Write(c.hb)
			}
			c.nc.Close()
			return
		}
		c.sched.Serve(c.t.cfg.WriteBatchBytes-len(c.hb), c.emit)
		if len(c.hb) == 0 {
			<-c.sched.Wake()
			continue
		}
		if err := c.flush(); err != nil {
			c.nc.Close() // the reader goroutine sees it and tears down
			return
		}
	}
}

// emit appends one frame to the batch; its payload is written from its
// buffer by flush.
func (c *serverConn) emit(o *chanproto.Outbound, m wire.Message, payload exchange.Buffer, st chanproto.Status) int {
	c.hb = wire.AppendFrame(c.hb, m, c.t.wopts)
	if payload.Len() > 0 {
		c.segs = append(c.segs, payloadSeg{end: len(c.hb), buf: payload})
	}
	if st.Buffer {
		c.frames++
	}
	if st.Done {
		c.forget(o)
	}
	return wire.FrameLen(m, c.t.wopts)
}

// flush writes the batch with one writev: header bytes from hb, payloads
// from their buffers (no copy), then releases the payload buffers.
func (c *serverConn) flush() error {
	if len(c.hb) == 0 {
		return nil
	}
	bufs := c.backing[:0]
	start := 0
	for _, s := range c.segs {
		bufs = append(bufs, c.hb[start:s.end], s.buf.Bytes())
		start = s.end
	}
	if start < len(c.hb) {
		bufs = append(bufs, c.hb[start:])
	}
	c.backing = bufs
	c.wbuf = bufs
	var bc *batchConn
	if tc, ok := c.nc.(*tls.Conn); ok {
		bc, _ = tc.NetConn().(*batchConn)
		bc.begin()
	}
	n, err := c.wbuf.WriteTo(c.nc)
	if bc != nil {
		if ferr := bc.flush(); err == nil {
			err = ferr
		}
	}
	clear(c.backing) // drop references to the payloads
	for i := range c.segs {
		c.segs[i].buf.Release()
		c.segs[i] = payloadSeg{}
	}
	c.segs = c.segs[:0]
	c.t.stats.buffersSent.Add(int64(c.frames))
	c.frames = 0
	c.t.stats.writes.Add(1)
	c.t.stats.bytesWritten.Add(n)
	return err
}
