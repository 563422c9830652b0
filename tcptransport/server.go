package tcptransport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// serverConn is the server side of one accepted connection (Flink's
// PartitionRequestServerHandler and PartitionRequestQueue): a reader
// goroutine decodes the client's messages and one writer goroutine serves
// the available readers round-robin, coalescing their frames into
// batched writes.
type serverConn struct {
	t        *Transport
	nc       net.Conn
	peer     string
	provider exchange.ViewProvider
	peerMax  int // the largest frame the client accepts

	mu      sync.Mutex
	readers map[wire.ID]*srvReader
	recent  recentSet
	avail   []*srvReader // FIFO of readers with something to send, from head
	head    int
	ctrl    []byte // encoded frames queued by the reader goroutine
	closing bool
	wake    chan struct{}

	writerDone chan struct{}
	done       chan struct{} // closed when serve returns

	// Writer-owned state, reused across batches.
	hb      []byte       // frame headers (and whole control frames) of a batch
	segs    []payloadSeg // payloads, by the end offset of their header in hb
	backing net.Buffers
	wbuf    net.Buffers
	wBuf    wire.BufferResponse
	wBack   wire.BacklogAnnouncement
}

type payloadSeg struct {
	end int // offset in hb where the payload goes
	buf exchange.Buffer
}

// srvReader is one partition request served on a connection.
type srvReader struct {
	id       wire.ID
	part     wire.ID
	r        *exchange.SubpartitionView
	released bool // guarded by serverConn.mu
}

func newServerConn(t *Transport, nc net.Conn, p exchange.ViewProvider) *serverConn {
	return &serverConn{
		t: t, nc: nc, peer: nc.RemoteAddr().String(), provider: p,
		readers: make(map[wire.ID]*srvReader),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

func (c *serverConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// errDuplicateReceiver: a second PartitionRequest for an active receiverId.
var errDuplicateReceiver = fmt.Errorf("%w: duplicate receiverId", wire.ErrProtocol)

// errCloseRequest: the client asked to close.
var errCloseRequest = errors.New("client sent CloseRequest")

func fatalCode(err error) wire.ErrorCode {
	switch {
	case errors.Is(err, wire.ErrVersionMismatch):
		return wire.CodeVersionMismatch
	case errors.Is(err, errDuplicateReceiver):
		return wire.CodeDuplicateReceiver
	}
	return wire.CodeProtocol
}

func (c *serverConn) serve() {
	t := c.t
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.served, c)
		t.mu.Unlock()
	}()
	defer close(c.done)
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
		if h, ok := m.(*wire.Hello); !ok {
			err = fmt.Errorf("%w: expected Hello, got %s", wire.ErrProtocol, m.ID())
		} else if err = wire.CheckHello(*h); err == nil {
			c.peerMax = int(h.MaxFrameSize)
		}
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
func (c *serverConn) readLoop(rd *wire.Reader) error {
	for {
		m, err := rd.Next()
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *wire.PartitionRequest:
			if err := c.openReader(m); err != nil {
				return err
			}
		case *wire.AddCredit:
			sr, err := c.reader(m.ReceiverID, m.ID())
			if err != nil {
				return err
			}
			if sr != nil {
				if err := sr.r.AddCredit(int(m.Credit)); err != nil {
					return err
				}
			}
		case *wire.ResumeConsumption:
			sr, err := c.reader(m.ReceiverID, m.ID())
			if err != nil {
				return err
			}
			if sr != nil {
				sr.r.Resume()
			}
		case *wire.AckAllUserRecordsProcessed:
			sr, err := c.reader(m.ReceiverID, m.ID())
			if err != nil {
				return err
			}
			if sr != nil {
				sr.r.AckAllRecordsProcessed()
			}
		case *wire.TaskEventRequest:
			sr, err := c.reader(m.ReceiverID, m.ID())
			if err != nil {
				return err
			}
			if sr != nil {
				if sr.part != m.PartitionID {
					return fmt.Errorf("%w: TaskEventRequest for partition %s on receiver %s, which reads partition %s", wire.ErrProtocol, m.PartitionID, m.ReceiverID, sr.part)
				}
				sr.r.TaskEvent(bytes.Clone(m.Event))
			}
		case *wire.NewBufferSize:
			// Buffer debloating is not implemented by the readers; the
			// message is checked and otherwise ignored.
			if _, err := c.reader(m.ReceiverID, m.ID()); err != nil {
				return err
			}
		case *wire.CancelPartitionRequest:
			c.cancel(m.ReceiverID)
		case *wire.CloseRequest:
			return errCloseRequest
		default:
			return fmt.Errorf("%w: unexpected %s from a client", wire.ErrProtocol, m.ID())
		}
	}
}

// reader returns the reader of id: nil without error for a recently
// released one, a protocol error for an id never requested here.
func (c *serverConn) reader(id wire.ID, msg wire.MsgID) (*srvReader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sr := c.readers[id]; sr != nil {
		return sr, nil
	}
	if c.recent.has(id) {
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %s for unknown receiver %s (never requested on this connection)", wire.ErrProtocol, msg, id)
}

func (c *serverConn) openReader(m *wire.PartitionRequest) error {
	id := m.ReceiverID
	c.mu.Lock()
	_, dup := c.readers[id]
	c.mu.Unlock()
	if dup {
		return fmt.Errorf("%w: second PartitionRequest for receiver %s on one connection", errDuplicateReceiver, id)
	}
	sr := &srvReader{id: id, part: m.PartitionID}
	r, err := c.provider.OpenView(exchange.ViewRequest{
		Partition:     exchange.PartitionID(m.PartitionID),
		Subpartition:  int(m.Subpartition),
		Receiver:      exchange.ChannelID(id),
		InitialCredit: int(m.Credit),
		Peer:          c.peer,
	}, func(r *exchange.SubpartitionView) { c.enqueue(sr, r) })
	if err != nil {
		c.t.log.Debug().Err(err).Str("peer", c.peer).Str("receiver", id.String()).Msg("partition request refused")
		resp := wire.ErrorResponse{ReceiverID: id, Code: exchange.WireErrorCode(err), Message: err.Error()}
		c.mu.Lock()
		c.recent.add(id)
		c.ctrl = wire.AppendFrame(c.ctrl, &resp, c.t.wopts)
		c.mu.Unlock()
		c.signal()
		return nil
	}
	c.mu.Lock()
	sr.r = r
	if c.closing {
		c.mu.Unlock()
		r.Release()
		return nil
	}
	c.readers[id] = sr
	c.recent.remove(id)
	c.mu.Unlock()
	return nil
}

// enqueue is the readers' onAvailable: it queues sr for the writer.
func (c *serverConn) enqueue(sr *srvReader, r *exchange.SubpartitionView) {
	c.mu.Lock()
	if sr.r == nil {
		sr.r = r // called from inside OpenView
	}
	if c.closing || sr.released {
		c.mu.Unlock()
		return
	}
	c.pushLocked(sr)
	c.mu.Unlock()
	c.signal()
}

func (c *serverConn) pushLocked(sr *srvReader) {
	if c.head > 0 && len(c.avail) == cap(c.avail) {
		n := copy(c.avail, c.avail[c.head:])
		clear(c.avail[n:])
		c.avail = c.avail[:n]
		c.head = 0
	}
	c.avail = append(c.avail, sr)
}

func (c *serverConn) pop() *srvReader {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sr *srvReader
	for sr == nil && c.head < len(c.avail) {
		x := c.avail[c.head]
		c.avail[c.head] = nil
		c.head++
		if !x.released {
			sr = x
		}
	}
	if c.head == len(c.avail) {
		c.avail, c.head = c.avail[:0], 0
	}
	return sr
}

// requeue puts a reader that has more to send at the tail of the queue.
func (c *serverConn) requeue(sr *srvReader) {
	c.mu.Lock()
	if !c.closing && !sr.released {
		c.pushLocked(sr)
	}
	c.mu.Unlock()
}

// cancel releases the reader of id (CancelPartitionRequest); unknown ids
// are ignored: cancel races with the reader's own end.
func (c *serverConn) cancel(id wire.ID) {
	c.mu.Lock()
	sr := c.readers[id]
	if sr != nil {
		delete(c.readers, id)
		sr.released = true
		c.recent.add(id)
	}
	c.mu.Unlock()
	if sr != nil {
		sr.r.Release()
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
	} else if !closed && err != errCloseRequest {
		t.log.Debug().Err(causeOf(err)).Str("peer", c.peer).Msg("connection ended")
	}
	c.mu.Lock()
	c.closing = true
	readers := c.readers
	c.readers = nil
	for _, sr := range readers {
		sr.released = true
	}
	clear(c.avail)
	c.avail, c.head = nil, 0
	if fatal {
		resp := wire.ErrorResponse{Fatal: true, Code: fatalCode(err), Message: err.Error()}
		c.ctrl = wire.AppendFrame(c.ctrl, &resp, t.wopts)
	}
	c.mu.Unlock()
	c.signal()
	if fatal {
		// The writer flushes the ErrorResponse, then closes; the deadline
		// bounds a peer that does not read.
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	} else {
		c.nc.Close()
	}
	for _, sr := range readers {
		sr.r.Release()
	}
	<-c.writerDone
	c.nc.Close()
}

// writeLoop is the connection's single writer: it serves queued control
// frames and available readers, round-robin, batching up to
// WriteBatchBytes per write.
func (c *serverConn) writeLoop() {
	defer close(c.writerDone)
	for {
		c.mu.Lock()
		for !c.closing && len(c.ctrl) == 0 && c.head == len(c.avail) {
			c.mu.Unlock()
			<-c.wake
			c.mu.Lock()
		}
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
		c.fill()
		if err := c.flush(); err != nil {
			c.nc.Close() // the reader goroutine sees it and tears down
			return
		}
	}
}

// fill appends frames from available readers to the batch.
func (c *serverConn) fill() {
	t := c.t
	o := t.wopts
	limit := t.cfg.WriteBatchBytes
	size := len(c.hb)
	frames := 0
	for size < limit {
		sr := c.pop()
		if sr == nil {
			break
		}
		resp := sr.r.Next()
		switch resp.Kind {
		case exchange.ResponseBuffer:
			n := resp.Buffer.Len()
			flen := wire.BufferResponseHeaderMax + n
			if flen > c.peerMax {
				resp.Buffer.Release()
				c.failReader(sr, fmt.Errorf("%w: buffer of %d bytes does not fit the consumer's maximum frame size %d (segment sizes differ?)",
					exchange.ErrInsufficientBuffers, n, c.peerMax))
				continue
			}
			c.wBuf = wire.BufferResponse{ReceiverID: sr.id, Sequence: resp.Sequence, Backlog: int32(max(resp.Backlog, 0)),
				DataType: resp.Buffer.DataType, Size: int32(n)}
			c.hb = wire.AppendFrame(c.hb, &c.wBuf, o)
			if n > 0 {
				c.segs = append(c.segs, payloadSeg{end: len(c.hb), buf: resp.Buffer})
			} else {
				resp.Buffer.Release()
			}
			size += flen
			frames++
		case exchange.ResponseBacklog:
			c.wBack = wire.BacklogAnnouncement{ReceiverID: sr.id, Backlog: int32(max(resp.Backlog, 0))}
			c.hb = wire.AppendFrame(c.hb, &c.wBack, o)
			size += wire.HeaderSize + 20
		case exchange.ResponseError:
			c.failReader(sr, resp.Err)
			continue
		}
		if resp.More {
			c.requeue(sr)
		}
	}
	if frames > 0 {
		t.stats.buffersSent.Add(int64(frames))
	}
}

// failReader sends a non-fatal ErrorResponse for sr and releases it.
func (c *serverConn) failReader(sr *srvReader, err error) {
	c.mu.Lock()
	if sr.released {
		c.mu.Unlock()
		return
	}
	sr.released = true
	delete(c.readers, sr.id)
	c.recent.add(sr.id)
	c.mu.Unlock()
	resp := wire.ErrorResponse{ReceiverID: sr.id, Code: exchange.WireErrorCode(err), Message: err.Error()}
	c.hb = wire.AppendFrame(c.hb, &resp, c.t.wopts)
	sr.r.Release()
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
	n, err := c.wbuf.WriteTo(c.nc)
	clear(c.backing) // drop references to the payloads
	for i := range c.segs {
		c.segs[i].buf.Release()
		c.segs[i] = payloadSeg{}
	}
	c.segs = c.segs[:0]
	c.t.stats.writes.Add(1)
	c.t.stats.bytesWritten.Add(n)
	return err
}
