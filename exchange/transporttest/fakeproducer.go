package transporttest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange/wire"
)

// FakeProducer is a hand-driven producer node for consumer tests. It
// accepts consumers' channels over TCP (one connection, frames tagged with
// receiverId) or QUIC (one stream per channel, stream mode), answers the
// Hello, and hands each PartitionRequest to the test as a FakeChannel on
// which the test writes any frame, well formed or not. What the consumer
// sends after its PartitionRequest is read: AddCredit counts for
// FakeChannel.TakeCredit, the rest is dropped.
//
// It is the misbehaving peer of the consumer-side bad-input tests: a data
// buffer without credit, a sequence gap, an oversized frame, garbage.
type FakeProducer struct {
	addr  string
	opts  wire.Options
	chans chan *FakeChannel
	done  chan struct{} // closed by Close
	stop  func() error

	mu     sync.Mutex
	closed bool
	conns  []io.Closer
	wg     sync.WaitGroup
}

// FakeChannel is one channel a FakeProducer accepted.
type FakeChannel struct {
	// Request is the consumer's PartitionRequest (ReceiverID is zero on
	// QUIC, where the stream is the channel).
	Request wire.PartitionRequest

	p  *FakeProducer
	mu *sync.Mutex // shared by the channels of one TCP connection
	w  io.Writer

	creditMu   sync.Mutex
	credit     int           // announced by the consumer and not yet taken
	creditWake chan struct{} // signalled when credit arrives
}

func newFakeChannel(p *FakeProducer, pr *wire.PartitionRequest, mu *sync.Mutex, w io.Writer) *FakeChannel {
	return &FakeChannel{Request: *pr, p: p, mu: mu, w: w, credit: int(pr.Credit), creditWake: make(chan struct{}, 1)}
}

func (c *FakeChannel) addCredit(n int32) {
	c.creditMu.Lock()
	c.credit += int(n)
	c.creditMu.Unlock()
	select {
	case c.creditWake <- struct{}{}:
	default:
	}
}

// Credit is the consumer's credit not yet taken: back at its initial
// credit once the consumer has read every buffer sent.
func (c *FakeChannel) Credit() int {
	c.creditMu.Lock()
	defer c.creditMu.Unlock()
	return c.credit
}

// TakeCredit waits for one buffer of the consumer's credit (its initial
// credit, then its AddCredits) and uses it, so that a test can send data
// as a correct producer would: only with credit.
func (c *FakeChannel) TakeCredit(ctx context.Context) error {
	for {
		c.creditMu.Lock()
		if c.credit > 0 {
			c.credit--
			c.creditMu.Unlock()
			return nil
		}
		c.creditMu.Unlock()
		select {
		case <-c.creditWake:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.p.done:
			return errors.New("fake producer: closed")
		}
	}
}

// NewFakeTCPProducer listens on loopback TCP for consumers whose segment
// size is segmentSize. It is closed when the test ends.
func NewFakeTCPProducer(t testing.TB, segmentSize int) *FakeProducer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newFakeProducer(ln.Addr().String(), wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(segmentSize)}, ln.Close)
	p.goTracked(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.track(nc) {
				return
			}
			p.goTracked(func() { p.serveTCP(nc) })
		}
	})
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// NewFakeQUICProducer listens on loopback UDP for QUIC consumers whose
// segment size is segmentSize. tlsConf is the server side of the
// consumer's TLS setup (its certificate, ALPN and client-certificate
// policy); quicConf may be nil. It is closed when the test ends.
func NewFakeQUICProducer(t testing.TB, segmentSize int, tlsConf *tls.Config, quicConf *quic.Config) *FakeProducer {
	t.Helper()
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, quicConf)
	if err != nil {
		t.Fatal(err)
	}
	p := newFakeProducer(ln.Addr().String(), wire.Options{StreamMode: true, MaxFrameSize: wire.MaxFrameSizeFor(segmentSize)}, ln.Close)
	p.goTracked(func() {
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			if !p.track(closerFunc(func() error { return c.CloseWithError(0, "fake producer closed") })) {
				return
			}
			p.goTracked(func() {
				for {
					st, err := c.AcceptStream(context.Background())
					if err != nil {
						return
					}
					p.goTracked(func() { p.serveStream(st) })
				}
			})
		}
	})
	t.Cleanup(func() { _ = p.Close() })
	return p
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func newFakeProducer(addr string, o wire.Options, stop func() error) *FakeProducer {
	return &FakeProducer{addr: addr, opts: o, chans: make(chan *FakeChannel, 64), done: make(chan struct{}), stop: stop}
}

// Addr is the address consumers' channels name.
func (p *FakeProducer) Addr() string { return p.addr }

// Options are the framing options the fake writes with.
func (p *FakeProducer) Options() wire.Options { return p.opts }

// Accept returns the next channel a consumer requested.
func (p *FakeProducer) Accept(ctx context.Context) (*FakeChannel, error) {
	select {
	case c := <-p.chans:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("fake producer: no partition request: %w", ctx.Err())
	}
}

// Close stops listening, closes every connection and waits for the
// fake's goroutines.
func (p *FakeProducer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	close(p.done)
	err := p.stop()
	for _, c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
	return err
}

func (p *FakeProducer) track(c io.Closer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *FakeProducer) goTracked(f func()) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// handshake reads the consumer's Hello and answers with the fake's.
func (p *FakeProducer) handshake(rd *wire.Reader, w io.Writer) error {
	m, err := rd.Next()
	if err != nil {
		return err
	}
	if _, ok := m.(*wire.Hello); !ok {
		return fmt.Errorf("fake producer: consumer sent %s first, want Hello", m.ID())
	}
	_, err = w.Write(wire.AppendFrame(nil, wire.NewHello(p.opts), p.opts))
	return err
}

// deliver queues c for Accept unless the fake is closed.
func (p *FakeProducer) deliver(c *FakeChannel) bool {
	select {
	case p.chans <- c:
		return true
	case <-p.done:
		return false
	}
}

// serveTCP: one connection, many channels, told apart by receiverId.
func (p *FakeProducer) serveTCP(nc net.Conn) {
	rd := wire.NewReader(nc, p.opts)
	if p.handshake(rd, nc) != nil {
		return
	}
	mu := new(sync.Mutex)
	chans := make(map[wire.ID]*FakeChannel)
	for {
		m, err := rd.Next()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *wire.PartitionRequest:
			c := newFakeChannel(p, m, mu, nc)
			chans[m.ReceiverID] = c
			if !p.deliver(c) {
				return
			}
		case *wire.AddCredit:
			if c := chans[m.ReceiverID]; c != nil {
				c.addCredit(m.Credit)
			}
		}
	}
}

// serveStream: one QUIC stream is one channel.
func (p *FakeProducer) serveStream(st *quic.Stream) {
	rd := wire.NewReader(st, p.opts)
	if p.handshake(rd, st) != nil {
		st.CancelRead(0)
		return
	}
	m, err := rd.Next()
	pr, ok := m.(*wire.PartitionRequest)
	if err != nil || !ok {
		st.CancelRead(0)
		return
	}
	c := newFakeChannel(p, pr, new(sync.Mutex), st)
	if !p.deliver(c) {
		return
	}
	// Read the consumer's control messages until the stream ends.
	for {
		m, err := rd.Next()
		if err != nil {
			return
		}
		if ac, ok := m.(*wire.AddCredit); ok {
			c.addCredit(ac.Credit)
		}
	}
}

// Send writes m as a frame; on TCP the channel's receiverId is set on
// channel-scoped messages first.
func (c *FakeChannel) Send(m wire.Message) error {
	if !c.p.opts.StreamMode {
		id := c.Request.ReceiverID
		switch v := m.(type) {
		case *wire.BufferResponse:
			v.ReceiverID = id
		case *wire.BacklogAnnouncement:
			v.ReceiverID = id
		case *wire.ErrorResponse:
			if !v.Fatal {
				v.ReceiverID = id
			}
		}
	}
	return c.SendRaw(wire.AppendFrame(nil, m, c.p.opts))
}

// SendBuffer writes a BufferResponse of a data buffer carrying records
// (each is length-prefixed as the model serialises them).
func (c *FakeChannel) SendBuffer(seq int32, backlog int32, records ...[]byte) error {
	var payload []byte
	for _, r := range records {
		payload = append(payload, byte(len(r)>>24), byte(len(r)>>16), byte(len(r)>>8), byte(len(r)))
		payload = append(payload, r...)
	}
	m := &wire.BufferResponse{Sequence: seq, Backlog: backlog, DataType: wire.DataBuffer, Size: int32(len(payload))}
	if !c.p.opts.StreamMode {
		m.ReceiverID = c.Request.ReceiverID
	}
	return c.SendRaw(append(wire.AppendFrame(nil, m, c.p.opts), payload...))
}

// SendBufferResponse writes m (its Size and, on TCP, ReceiverID set
// here) followed by payload as it is, e.g. a payload flagged compressed.
func (c *FakeChannel) SendBufferResponse(m *wire.BufferResponse, payload []byte) error {
	m.Size = int32(len(payload))
	if !c.p.opts.StreamMode {
		m.ReceiverID = c.Request.ReceiverID
	}
	return c.SendRaw(append(wire.AppendFrame(nil, m, c.p.opts), payload...))
}

// SendRaw writes b as it is: for frames no valid encoder would produce.
func (c *FakeChannel) SendRaw(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.w.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(10 * time.Second))
	}
	_, err := c.w.Write(b)
	if err != nil {
		return errors.Join(errors.New("fake producer: write"), err)
	}
	return nil
}
