package memtransport

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
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
	return func(o exchange.TransportOptions) (exchange.Transport, error) {
		if o.SegmentSize < 0 {
			return nil, &exchange.ConfigError{Field: "memtransport SegmentSize", Value: o.SegmentSize, Reason: "must be >= 0"}
		}
		if o.SegmentSize == 0 {
			o.SegmentSize = exchange.DefaultSegmentSize
		}
		t := &Transport{net: n, opts: wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(o.SegmentSize)}, node: chanproto.NewNode[*conn]("memtransport")}
		t.peers = chanproto.NewPeers(1, t.dial)
		return t, nil
	}
}

// Transport is one node's in-memory transport. Messages travel as wire
// messages, unencoded, through the same channel protocol as on the
// network transports (package chanproto).
type Transport struct {
	net   *Network
	opts  wire.Options
	peers *chanproto.Peers[*conn]

	node *chanproto.Node[*conn] // address, served connections, goroutines
}

// Name implements exchange.Transport.
func (t *Transport) Name() string { return "mem" }

// Addr implements exchange.Transport.
func (t *Transport) Addr() string { return t.node.Addr() }

// Listen implements exchange.Transport.
func (t *Transport) Listen(_ context.Context, p exchange.ViewProvider) error {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	t.net.next++
	addr := fmt.Sprintf("mem:%d", t.net.next)
	if err := t.node.Listening(nil, addr, p); err != nil {
		return err
	}
	t.net.nodes[addr] = t
	return nil
}

// OpenChannel implements exchange.Transport.
func (t *Transport) OpenChannel(ctx context.Context, addr string, req exchange.ChannelRequest, h exchange.ChannelHandler) (exchange.ChannelLink, error) {
	c, err := t.peers.Acquire(ctx, addr, wire.ID(req.Receiver))
	if err != nil {
		return nil, err
	}
	l := &link{Channel: chanproto.NewChannel(h, req, addr, c.q, t.opts), c: c}
	c.mu.Lock()
	_, dup := c.chans[l.Receiver]
	if !dup {
		c.chans[l.Receiver] = l.Channel
	}
	c.mu.Unlock()
	if dup {
		t.peers.Release(c)
		return nil, fmt.Errorf("%w: memtransport: receiver %s is already open to %s", exchange.ErrAlreadyConsumed, l.Receiver, addr)
	}
	if err := c.q.Request(l.Channel, req.Subpartition, req.InitialCredit); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// dial connects to the node at addr (chanproto.Peers' dial).
func (t *Transport) dial(addr string) *conn {
	c := &conn{
		client: t, peer: addr, ready: make(chan struct{}),
		q: chanproto.NewControlQueue(), sched: chanproto.NewScheduler(),
		chans: make(map[wire.ID]*chanproto.Channel),
		outs:  make(map[wire.ID]*chanproto.Outbound),
		done:  make(chan struct{}),
	}
	close(c.ready)
	t.net.mu.Lock()
	srv := t.net.nodes[addr]
	t.net.mu.Unlock()
	c.server = srv // before the server's Close can see c
	if srv == nil || !srv.node.Track(c) {
		c.dialErr = &exchange.ConnectionError{Peer: addr, Err: errors.New("connection refused")}
		close(c.done)
		return c
	}
	t.node.Go(c.serve)
	return c
}

// Close implements exchange.Transport: every connection, as client or
// server, breaks and fails its channels.
func (t *Transport) Close() error {
	all, first := t.node.Close()
	if !first {
		return nil
	}
	all = append(all, t.peers.Close()...)
	t.net.mu.Lock()
	delete(t.net.nodes, t.Addr())
	t.net.mu.Unlock()
	for _, c := range all {
		c.breakConn(errors.New("peer closed"))
	}
	t.node.Wait()
	for _, c := range all {
		<-c.done
	}
	return nil
}

// conn is one simulated connection; its goroutine plays the client's
// writer, the server's reader and writer, and the client's reader.
type conn struct {
	client, server *Transport
	peer           string
	ready          chan struct{}
	dialErr        error
	q              *chanproto.ControlQueue // client to server
	sched          *chanproto.Scheduler    // server to client

	mu     sync.Mutex
	chans  map[wire.ID]*chanproto.Channel  // client side
	outs   map[wire.ID]*chanproto.Outbound // server side
	broken error
	done   chan struct{}
}

// Ready, DialErr, Usable and CloseIdle make conn a chanproto.PeerConn.
func (c *conn) Ready() <-chan struct{} { return c.ready }
func (c *conn) DialErr() error         { return c.dialErr }
func (c *conn) Usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken == nil
}
func (c *conn) CloseIdle() { c.breakConn(errors.New("closed: last channel released")) }

func (c *conn) breakConn(err error) {
	c.mu.Lock()
	if c.broken == nil {
		c.broken = err
	}
	c.mu.Unlock()
	c.q.Stop(&exchange.ConnectionError{Peer: c.peer, Err: err})
}

func (c *conn) serve() {
	defer close(c.done)
	for {
		select {
		case <-c.q.Wake():
		case <-c.sched.Wake():
		}
		c.mu.Lock()
		err := c.broken
		c.mu.Unlock()
		if err != nil {
			c.teardown(err)
			return
		}
		c.q.Drain(c.handle)
		for c.sched.Serve(1<<20, c.deliver) {
		}
	}
}

func (c *conn) teardown(err error) {
	c.sched.Close()
	c.mu.Lock()
	chans, outs := c.chans, c.outs
	c.chans, c.outs = nil, nil
	c.mu.Unlock()
	for _, o := range outs {
		o.Release()
	}
	for _, ch := range chans {
		ch.Fail(&exchange.ConnectionError{Peer: c.peer, Err: err})
	}
	c.client.peers.Forget(c)
	c.server.node.Untrack(c)
}

// handle is the server receiving one message of a client channel.
func (c *conn) handle(ch *chanproto.Channel, m wire.Message) {
	id := ch.Receiver
	c.mu.Lock()
	o := c.outs[id]
	c.mu.Unlock()
	switch m := m.(type) {
	case *wire.PartitionRequest: // receiver ids are unique on the connection (OpenChannel)
		o = chanproto.NewOutbound(id, m.PartitionID, c.client.Addr(), c.server.opts, c.client.opts.EffectiveMaxFrameSize(), c.sched.Ready)
		c.mu.Lock()
		c.outs[id] = o
		c.mu.Unlock()
		err := o.Open(c.server.node.Provider(), exchange.ViewRequest{
			Partition: ch.Partition, Subpartition: int(m.Subpartition),
			Receiver: exchange.ChannelID(id), InitialCredit: int(m.Credit), Peer: c.client.Addr(),
		})
		if err != nil {
			c.forgetOut(o)
			c.forget(ch)
			_, _ = ch.Deliver(chanproto.Refusal(id, err), nil)
		}
	case *wire.CancelPartitionRequest:
		if o != nil {
			c.forgetOut(o)
			o.Release()
		}
	default:
		if o == nil {
			return
		}
		if _, verr := o.Apply(m); verr != nil {
			c.forgetOut(o)
			o.Fail(verr)
		}
	}
}

// deliver is the client receiving one frame of a server channel.
func (c *conn) deliver(o *chanproto.Outbound, m wire.Message, payload exchange.Buffer, st chanproto.Status) int {
	defer payload.Release()
	if st.Done {
		c.forgetOut(o)
	}
	c.mu.Lock()
	ch := c.chans[o.Receiver]
	c.mu.Unlock()
	if ch == nil {
		return 1
	}
	if failed, _ := ch.Deliver(m, copyPayload{payload}); failed {
		c.forget(ch)
		if !st.Done {
			c.forgetOut(o)
			o.Release()
		}
	}
	return payload.Len() + 1
}

func (c *conn) forget(ch *chanproto.Channel) {
	c.mu.Lock()
	if c.chans[ch.Receiver] == ch {
		delete(c.chans, ch.Receiver)
	}
	c.mu.Unlock()
}

func (c *conn) forgetOut(o *chanproto.Outbound) {
	c.mu.Lock()
	if c.outs[o.Receiver] == o {
		delete(c.outs, o.Receiver)
	}
	c.mu.Unlock()
}

// copyPayload is a payload that is copied, as a network would.
type copyPayload struct{ b exchange.Buffer }

func (p copyPayload) ReadPayload(dst []byte) error { copy(dst, p.b.Bytes()); return nil }
func (p copyPayload) DiscardPayload() error        { return nil }

// link is a channel's exchange.ChannelLink.
type link struct {
	*chanproto.Channel
	c *conn
}

// Close implements exchange.ChannelLink.
func (l *link) Close() error {
	if l.MarkClosed() {
		l.c.forget(l.Channel)
		l.c.q.Cancel(l.Channel)
		l.c.client.peers.Release(l.c)
	}
	return nil
}
