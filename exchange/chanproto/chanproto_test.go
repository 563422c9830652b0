package chanproto

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// handler is a ChannelHandler that records calls.
type handler struct {
	mu      sync.Mutex
	credit  int
	buffers [][]byte
	errs    []error
}

func (h *handler) RequestBuffer(dt wire.DataType, size int) (exchange.Buffer, error) {
	return exchange.NewUnpooledBuffer(make([]byte, size), dt), nil
}
func (h *handler) OnBuffer(b exchange.Buffer, _ int32, _ int) {
	h.mu.Lock()
	h.buffers = append(h.buffers, append([]byte(nil), b.Bytes()...))
	h.mu.Unlock()
	b.Release()
}
func (h *handler) OnBacklog(int) {}
func (h *handler) TakeUnannouncedCredit() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.credit
	h.credit = 0
	return n
}
func (h *handler) OnError(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

var opts = wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(8 << 10)}

// TestControlQueueCoalescesCredit: notifications while an AddCredit is
// queued go out as one message carrying all the credit; a closed channel
// sends nothing but its cancel.
func TestControlQueueCoalescesCredit(t *testing.T) {
	q := NewControlQueue()
	h := &handler{}
	ch := NewChannel(h, exchange.ChannelRequest{Receiver: exchange.NewChannelID()}, "peer", q, opts)
	for range 5 {
		h.mu.Lock()
		h.credit++
		h.mu.Unlock()
		ch.NotifyCreditAvailable()
	}
	if err := ch.ResumeConsumption(); err != nil {
		t.Fatal(err)
	}
	var got []wire.Message
	q.Drain(func(_ *Channel, m wire.Message) { got = append(got, m) })
	if len(got) != 2 || got[0].(*wire.AddCredit).Credit != 5 || got[1].ID() != wire.IDResumeConsumption {
		t.Fatalf("drained %v, want one AddCredit of 5 then ResumeConsumption", got)
	}
	ch.NotifyCreditAvailable() // no credit: nothing is written
	q.Drain(func(_ *Channel, m wire.Message) { t.Fatalf("unexpected %s", m.ID()) })
	ch.MarkClosed()
	if err := ch.AckAllRecordsProcessed(); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("message on a closed link: %v", err)
	}
	q.Cancel(ch)
	got = got[:0]
	q.Drain(func(_ *Channel, m wire.Message) { got = append(got, m) })
	if len(got) != 1 || got[0].ID() != wire.IDCancelPartitionRequest {
		t.Fatalf("drained %v after close, want only the cancel", got)
	}
	q.Stop(exchange.ErrClosed)
	if err := NewChannel(h, exchange.ChannelRequest{}, "peer", q, opts).ResumeConsumption(); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("message on a stopped queue: %v", err)
	}
}

// payload serves one BufferResponse payload.
type payload struct {
	b         []byte
	discarded bool
}

func (p *payload) ReadPayload(dst []byte) error { copy(dst, p.b); return nil }
func (p *payload) DiscardPayload() error        { p.discarded = true; return nil }

// TestDeliver: buffers reach the handler; an ErrorResponse fails the
// channel once and ends handler calls.
func TestDeliver(t *testing.T) {
	h := &handler{}
	ch := NewChannel(h, exchange.ChannelRequest{Receiver: exchange.NewChannelID()}, "peer", NewControlQueue(), opts)
	if failed, err := ch.Deliver(&wire.BufferResponse{DataType: wire.DataBuffer, Size: 3}, &payload{b: []byte("abc")}); failed || err != nil {
		t.Fatal(failed, err)
	}
	failed, err := ch.Deliver(&wire.ErrorResponse{Code: wire.CodeProtocol, Message: "bad"}, nil)
	if !failed || !errors.Is(err, exchange.ErrRemote) {
		t.Fatalf("ErrorResponse: %v %v", failed, err)
	}
	p := &payload{b: []byte("late")}
	if failed, err := ch.Deliver(&wire.BufferResponse{DataType: wire.DataBuffer, Size: 4}, p); failed || err != nil || !p.discarded {
		t.Fatalf("buffer after failure: %v %v, discarded %v", failed, err, p.discarded)
	}
	if len(h.buffers) != 1 || string(h.buffers[0]) != "abc" || len(h.errs) != 1 {
		t.Fatalf("handler saw %q and %v", h.buffers, h.errs)
	}
	if _, err := ch.Deliver(&wire.AddCredit{Credit: 1}, nil); !errors.Is(err, wire.ErrProtocol) {
		t.Fatalf("consumer message from the producer: %v", err)
	}
}

// TestSchedulerRoundRobinAndHold: ready outbounds are served in order,
// once each however often they are readied; a held one waits for Resume.
func TestSchedulerRoundRobinAndHold(t *testing.T) {
	s := NewScheduler()
	a, b, c := &Outbound{}, &Outbound{}, &Outbound{}
	s.Ready(a)
	s.Ready(b)
	s.Ready(a)
	s.Ready(c)
	for _, want := range []*Outbound{a, b, c, nil} {
		if got := s.Pop(); got != want {
			t.Fatalf("popped %p, want %p", got, want)
		}
	}
	s.Hold(a)
	s.Ready(a)
	if s.Pop() != nil {
		t.Fatal("a held outbound was served")
	}
	s.Resume(a, false)
	if s.Pop() != a {
		t.Fatal("an outbound readied while held was not served after Resume")
	}
	// Readied between Pop and Hold: it is queued, but not served while
	// held (its frames would overtake the one being written).
	s.Ready(a)
	s.Hold(a)
	if s.Pop() != nil {
		t.Fatal("a held outbound was served from the queue")
	}
	s.Resume(a, false)
	if s.Pop() != a {
		t.Fatal("not served after Resume")
	}
	b.ended.Store(true)
	s.Ready(c)
	s.Ready(b)
	if s.Pop() != c || s.Pop() != nil {
		t.Fatal("an ended outbound was served")
	}
	s.Close()
	s.Ready(a)
	if s.Pop() != nil {
		t.Fatal("served after Close")
	}
}

// conn is a PeerConn for Peers' tests.
type conn struct {
	ready  chan struct{}
	err    error
	closed bool
}

func (c *conn) Ready() <-chan struct{} { return c.ready }
func (c *conn) DialErr() error         { return c.err }
func (c *conn) Usable() bool           { return !c.closed }
func (c *conn) CloseIdle()             { c.closed = true }

// TestPeers: channels share a connection per node and stripe; the last
// release closes it; a failed dial is not kept.
func TestPeers(t *testing.T) {
	ctx := context.Background()
	var dialed []*conn
	p := NewPeers(4, func(addr string) *conn {
		c := &conn{ready: make(chan struct{})}
		if addr == "down" {
			c.err = errors.New("refused")
		}
		close(c.ready)
		dialed = append(dialed, c)
		return c
	})
	held := map[*conn]int{}
	for range 64 {
		c, err := p.Acquire(ctx, "node", wire.ID(exchange.NewChannelID()))
		if err != nil {
			t.Fatal(err)
		}
		held[c]++
	}
	if len(held) != 4 || len(dialed) != 4 {
		t.Fatalf("64 channels on %d connections (%d dialed), want 4", len(held), len(dialed))
	}
	for _, n := range held {
		if n != 16 {
			t.Fatalf("a connection carries %d of 64 channels, want an even 16 each (%v)", n, held)
		}
	}
	for c, n := range held {
		if p.Refs(c) != n {
			t.Fatalf("refs %d, want %d", p.Refs(c), n)
		}
		for range n {
			p.Release(c)
		}
		if !c.closed {
			t.Fatal("last release did not close the connection")
		}
	}
	if _, err := p.Acquire(ctx, "down", wire.ID{}); err == nil || len(p.Conns()) != 0 {
		t.Fatalf("failed dial: %v, %d connections kept", err, len(p.Conns()))
	}
	p.Close()
	if _, err := p.Acquire(ctx, "node", wire.ID{}); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
}
