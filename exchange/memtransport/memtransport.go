package memtransport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Network is a set of in-memory nodes that can reach each other.
type Network struct {
	mu    sync.Mutex
	nodes map[string]*Transport
	next  int
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{nodes: make(map[string]*Transport)} }

// Factory returns a TransportFactory whose transports join n.
func (n *Network) Factory() exchange.TransportFactory {
	return func(exchange.TransportOptions) (exchange.Transport, error) {
		return &Transport{net: n, conns: make(map[string]*conn), served: make(map[*conn]struct{})}, nil
	}
}

// Transport is one node's in-memory transport.
type Transport struct {
	net *Network

	mu       sync.Mutex
	addr     string
	provider exchange.ViewProvider
	conns    map[string]*conn   // client side, by server address
	served   map[*conn]struct{} // server side
	closed   bool
	wg       sync.WaitGroup
}

// Name implements exchange.Transport.
func (t *Transport) Name() string { return "mem" }

// Addr implements exchange.Transport.
func (t *Transport) Addr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// Listen implements exchange.Transport.
func (t *Transport) Listen(_ context.Context, p exchange.ViewProvider) error {
	t.net.mu.Lock()
	t.net.next++
	addr := fmt.Sprintf("mem:%d", t.net.next)
	t.net.nodes[addr] = t
	t.net.mu.Unlock()
	t.mu.Lock()
	t.addr, t.provider = addr, p
	t.mu.Unlock()
	return nil
}

// OpenChannel implements exchange.Transport.
func (t *Transport) OpenChannel(ctx context.Context, addr string, req exchange.ChannelRequest, h exchange.ChannelHandler) (exchange.ChannelLink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t.net.mu.Lock()
	srv := t.net.nodes[addr]
	t.net.mu.Unlock()
	if srv == nil {
		return nil, &exchange.ConnectionError{Peer: addr, Err: errors.New("connection refused")}
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, exchange.ErrClosed
	}
	c := t.conns[addr]
	if c != nil && c.isBroken() {
		c = nil
	}
	if c == nil {
		var err error
		if c, err = srv.accept(t); err != nil {
			t.mu.Unlock()
			return nil, &exchange.ConnectionError{Peer: addr, Err: err}
		}
		t.conns[addr] = c
		t.wg.Add(1)
		go func() { defer t.wg.Done(); c.serve() }()
	}
	c.refs++
	t.mu.Unlock()
	l := &link{c: c, id: req.Receiver}
	c.push(task{kind: taskOpen, id: req.Receiver, req: req, h: h})
	return l, nil
}

func (t *Transport) accept(client *Transport) (*conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errors.New("connection refused")
	}
	c := &conn{
		client: client, server: t,
		readers:  make(map[exchange.ChannelID]*exchange.SubpartitionView),
		handlers: make(map[exchange.ChannelID]exchange.ChannelHandler),
		wake:     make(chan struct{}, 1),
	}
	t.served[c] = struct{}{}
	return c, nil
}

// Close implements exchange.Transport: every connection, as client or
// server, breaks and fails its channels.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var all []*conn
	for _, c := range t.conns {
		all = append(all, c)
	}
	for c := range t.served {
		all = append(all, c)
	}
	t.mu.Unlock()
	t.net.mu.Lock()
	delete(t.net.nodes, t.addr)
	t.net.mu.Unlock()
	for _, c := range all {
		c.breakConn(errors.New("peer closed"))
	}
	t.wg.Wait()
	for _, c := range all {
		<-c.doneC()
	}
	return nil
}

type taskKind int

const (
	taskOpen taskKind = iota
	taskCredit
	taskResume
	taskAck
	taskEvent
	taskCancel
)

type task struct {
	kind taskKind
	id   exchange.ChannelID
	req  exchange.ChannelRequest
	h    exchange.ChannelHandler
	data []byte
}

// conn is one simulated connection; its goroutine plays both the
// server's writer and the client's reader.
type conn struct {
	client, server *Transport

	mu       sync.Mutex
	tasks    []task
	avail    []*exchange.SubpartitionView
	readers  map[exchange.ChannelID]*exchange.SubpartitionView
	handlers map[exchange.ChannelID]exchange.ChannelHandler
	refs     int
	broken   error
	wake     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func (c *conn) doneC() chan struct{} {
	c.once.Do(func() { c.done = make(chan struct{}) })
	return c.done
}

func (c *conn) isBroken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken != nil
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) push(t task) {
	c.mu.Lock()
	if err := c.broken; err != nil {
		c.mu.Unlock()
		if t.kind == taskOpen {
			t.h.OnError(&exchange.ConnectionError{Peer: c.server.addr, Err: err})
		}
		return
	}
	c.tasks = append(c.tasks, t)
	c.mu.Unlock()
	c.signal()
}

func (c *conn) onAvailable(r *exchange.SubpartitionView) {
	c.mu.Lock()
	c.avail = append(c.avail, r)
	c.mu.Unlock()
	c.signal()
}

func (c *conn) breakConn(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	c.mu.Unlock()
	c.signal()
}

func (c *conn) serve() {
	defer close(c.doneC())
	peer := c.server.addr
	for {
		c.mu.Lock()
		if c.broken != nil {
			err := c.broken
			readers, handlers, tasks := c.readers, c.handlers, c.tasks
			c.readers, c.handlers, c.avail, c.tasks = nil, nil, nil, nil
			c.mu.Unlock()
			for _, t := range tasks {
				if t.kind == taskOpen {
					handlers[t.id] = t.h
				}
			}
			c.teardown(peer, err, readers, handlers)
			return
		}
		tasks := c.tasks
		c.tasks = nil
		var r *exchange.SubpartitionView
		if len(tasks) == 0 && len(c.avail) > 0 {
			r = c.avail[0]
			c.avail = c.avail[1:]
		}
		idle := len(tasks) == 0 && r == nil
		c.mu.Unlock()
		if idle {
			<-c.wake
			continue
		}
		for _, t := range tasks {
			c.handle(peer, t)
		}
		if r != nil {
			c.send(peer, r)
		}
	}
}

func (c *conn) teardown(peer string, err error, readers map[exchange.ChannelID]*exchange.SubpartitionView, handlers map[exchange.ChannelID]exchange.ChannelHandler) {
	for _, r := range readers {
		r.Release()
	}
	for _, h := range handlers {
		h.OnError(&exchange.ConnectionError{Peer: peer, Err: err})
	}
	c.client.mu.Lock()
	if c.client.conns[peer] == c {
		delete(c.client.conns, peer)
	}
	c.client.mu.Unlock()
	c.server.mu.Lock()
	delete(c.server.served, c)
	c.server.mu.Unlock()
}

func (c *conn) lookup(id exchange.ChannelID) (*exchange.SubpartitionView, exchange.ChannelHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readers[id], c.handlers[id]
}

func (c *conn) handle(peer string, t task) {
	r, h := c.lookup(t.id)
	switch t.kind {
	case taskOpen:
		if r != nil || h != nil {
			t.h.OnError(&exchange.RemoteError{Peer: peer, Channel: t.id, Message: "duplicate receiver id"})
			return
		}
		c.mu.Lock()
		c.handlers[t.id] = t.h
		c.mu.Unlock()
		rd, err := c.server.provider.OpenView(exchange.ViewRequest{
			Partition: t.req.Partition, Subpartition: t.req.Subpartition,
			Receiver: t.id, InitialCredit: t.req.InitialCredit, Peer: c.client.addr,
		}, c.onAvailable)
		if err != nil {
			c.mu.Lock()
			delete(c.handlers, t.id)
			c.mu.Unlock()
			msg := wire.ErrorResponse{ReceiverID: wire.ID(t.id), Code: exchange.WireErrorCode(err), Message: err.Error()}
			t.h.OnError(exchange.ErrorFromWire(peer, t.req.Partition, &msg))
			return
		}
		c.mu.Lock()
		c.readers[t.id] = rd
		c.mu.Unlock()
	case taskCredit:
		if r == nil || h == nil {
			return
		}
		if n := h.TakeUnannouncedCredit(); n > 0 {
			if err := r.AddCredit(n); err != nil {
				c.failChannel(peer, t.id, err)
			}
		}
	case taskResume:
		if r != nil {
			r.Resume()
		}
	case taskAck:
		if r != nil {
			r.AckAllRecordsProcessed()
		}
	case taskEvent:
		if r != nil {
			r.TaskEvent(t.data)
		}
	case taskCancel:
		c.mu.Lock()
		delete(c.readers, t.id)
		delete(c.handlers, t.id)
		c.refs--
		last := c.refs == 0
		c.mu.Unlock()
		if r != nil {
			r.Release()
		}
		if last {
			c.client.mu.Lock()
			if c.client.conns[peer] == c && c.refs == 0 {
				delete(c.client.conns, peer)
				c.client.mu.Unlock()
				c.breakConn(errors.New("closed: last channel released"))
				return
			}
			c.client.mu.Unlock()
		}
	}
}

func (c *conn) failChannel(peer string, id exchange.ChannelID, err error) {
	c.mu.Lock()
	r, h := c.readers[id], c.handlers[id]
	delete(c.readers, id)
	delete(c.handlers, id)
	c.mu.Unlock()
	if r != nil {
		r.Release()
	}
	if h != nil {
		h.OnError(&exchange.RemoteError{Peer: peer, Channel: id, Message: err.Error()})
	}
}

// send delivers what r has, as the client would receive it.
func (c *conn) send(peer string, r *exchange.SubpartitionView) {
	id := r.Request().Receiver
	_, h := c.lookup(id)
	resp := r.Next()
	if h == nil {
		resp.Buffer.Release()
		return
	}
	switch resp.Kind {
	case exchange.ResponseBuffer:
		if resp.Buffer.Len() == 0 && !resp.Buffer.DataType.IsEvent() {
			resp.Buffer.Release()
			h.OnBuffer(exchange.Buffer{}, resp.Sequence, resp.Backlog)
			break
		}
		dst, err := h.RequestBuffer(resp.Buffer.DataType, resp.Buffer.Len())
		if err != nil {
			resp.Buffer.Release()
			c.failChannel(peer, id, err)
			return
		}
		copy(dst.Bytes(), resp.Buffer.Bytes())
		resp.Buffer.Release()
		h.OnBuffer(dst, resp.Sequence, resp.Backlog)
	case exchange.ResponseBacklog:
		h.OnBacklog(resp.Backlog)
	case exchange.ResponseError:
		c.mu.Lock()
		delete(c.readers, id)
		delete(c.handlers, id)
		c.mu.Unlock()
		r.Release()
		msg := wire.ErrorResponse{ReceiverID: wire.ID(id), Code: exchange.WireErrorCode(resp.Err), Message: resp.Err.Error()}
		h.OnError(exchange.ErrorFromWire(peer, r.Request().Partition, &msg))
		return
	}
	if resp.More {
		c.onAvailable(r)
	}
}

type link struct {
	c      *conn
	id     exchange.ChannelID
	mu     sync.Mutex
	closed bool
}

func (l *link) do(k taskKind, data []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return exchange.ErrClosed
	}
	l.c.push(task{kind: k, id: l.id, data: data})
	return nil
}

func (l *link) NotifyCreditAvailable()        { _ = l.do(taskCredit, nil) }
func (l *link) ResumeConsumption() error      { return l.do(taskResume, nil) }
func (l *link) AckAllRecordsProcessed() error { return l.do(taskAck, nil) }
func (l *link) NewBufferSize(int) error       { return nil }
func (l *link) SendTaskEvent(ev []byte) error { return l.do(taskEvent, append([]byte(nil), ev...)) }
func (l *link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.c.push(task{kind: taskCancel, id: l.id})
	return nil
}
