package chanproto_test

import (
	"context"
	"crypto/tls"
	"errors"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

const segment = 8 << 10

// rawChannel is one channel of a hand-driven consumer.
type rawChannel struct {
	id   wire.ID // receiverId on TCP, zero on QUIC
	send func(m wire.Message)
	in   chan wire.Message // what the producer sent it, payloads dropped
}

// rawConsumer speaks the wire protocol by hand, so that it can send what
// a real consumer never would; its channels share one connection.
type rawConsumer interface {
	open(t *testing.T, part exchange.PartitionID, sub int) *rawChannel
	close()
}

type transportCase struct {
	name    string
	factory func(t *testing.T) exchange.TransportFactory
	dial    func(t *testing.T, addr string) rawConsumer
}

// TestFailurePolicy asserts one failure policy on every network
// transport (docs/architecture.md, "failure policy"): a violation that
// belongs to one channel gets the same error class on tcp and quic and
// fails that channel only; another channel on the same connection keeps
// flowing.
func TestFailurePolicy(t *testing.T) {
	other := wire.ID(exchange.NewPartitionID())
	cases := []struct {
		name string
		bad  func(id wire.ID) wire.Message
		want string // in the ErrorResponse
	}{
		{"AddCredit overflowing the credit", func(id wire.ID) wire.Message {
			return &wire.AddCredit{ReceiverID: id, Credit: math.MaxInt32}
		}, "credit overflow"},
		{"credit 0", func(id wire.ID) wire.Message {
			return &wire.AddCredit{ReceiverID: id, Credit: 0}
		}, "AddCredit.credit = 0"},
		{"credit -3", func(id wire.ID) wire.Message {
			return &wire.AddCredit{ReceiverID: id, Credit: -3}
		}, "AddCredit.credit = -3"},
		{"task event for another partition", func(id wire.ID) wire.Message {
			return &wire.TaskEventRequest{PartitionID: other, ReceiverID: id, Event: []byte("hi")}
		}, "TaskEventRequest for partition"},
	}
	for _, tr := range transports() {
		t.Run(tr.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					checkG := transporttest.CheckGoroutines(t)
					ctx := testCtx(t, 30*time.Second)
					prod := newEnv(t, tr.factory(t))
					part := startProducer(t, ctx, prod)
					rc := tr.dial(t, prod.Addr())
					victim := rc.open(t, part.ID(), 0)
					healthy := rc.open(t, part.ID(), 1)
					readBuffers(t, ctx, healthy, 3)
					victim.send(c.bad(victim.id))
					err := channelError(t, ctx, victim, prod.Addr(), part.ID())
					var re *exchange.RemoteError
					if !errors.As(err, &re) || re.Fatal || !errors.Is(err, exchange.ErrProtocol) || !strings.Contains(err.Error(), c.want) {
						t.Fatalf("victim channel failed with %v; want a non-fatal RemoteError matching ErrProtocol with %q", err, c.want)
					}
					readBuffers(t, ctx, healthy, 20) // the connection goes on
					rc.close()
					part.Release()
					prod.Close()
					transporttest.CheckPools(t, prod)
					checkG()
				})
			}
			// An oversized task event is refused to the caller with the
			// same class on every transport; no channel fails.
			t.Run("oversized task event", func(t *testing.T) {
				checkG := transporttest.CheckGoroutines(t)
				ctx := testCtx(t, 30*time.Second)
				prod, cons := newEnv(t, tr.factory(t)), newEnv(t, tr.factory(t))
				part := startProducer(t, ctx, prod)
				g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{
					{Partition: part.ID(), Subpartition: 0, Addr: prod.Addr()},
					{Partition: part.ID(), Subpartition: 1, Addr: prod.Addr()},
				}})
				if err != nil {
					t.Fatal(err)
				}
				readGate(t, ctx, g, 1)
				err = g.SendTaskEvent(make([]byte, wire.MaxFrameSizeFor(segment)))
				if !errors.Is(err, exchange.ErrRecordTooLarge) {
					t.Fatalf("oversized task event: %v, want ErrRecordTooLarge", err)
				}
				readGate(t, ctx, g, 100) // both channels go on
				g.Close()
				part.Release()
				prod.Close()
				cons.Close()
				transporttest.CheckPools(t, prod, cons)
				checkG()
			})
		})
	}
}

func transports() []transportCase {
	return []transportCase{
		{"tcp", func(*testing.T) exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) }, dialTCP},
		{"quic", func(t *testing.T) exchange.TransportFactory { return quictransport.New(quicConfig(t)) }, dialQUIC},
	}
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newEnv(t *testing.T, f exchange.TransportFactory) *exchange.Environment {
	t.Helper()
	e, err := exchange.NewEnvironment(context.Background(), exchange.Config{NetworkMemory: 4 << 20, SegmentSize: segment, Transport: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// startProducer writes records to both subpartitions of a new partition
// until ctx ends or the partition is released.
func startProducer(t *testing.T, ctx context.Context, e *exchange.Environment) *exchange.ResultPartition {
	t.Helper()
	p, err := e.CreatePartition(exchange.PartitionConfig{Subpartitions: 2, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec := make([]byte, 100)
		for i := 0; ctx.Err() == nil; i++ {
			if p.EmitTo(ctx, i%2, rec) != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// readBuffers reads n data buffers on ch, granting a credit for each.
func readBuffers(t *testing.T, ctx context.Context, ch *rawChannel, n int) {
	t.Helper()
	for got := 0; got < n; {
		select {
		case m := <-ch.in:
			switch m := m.(type) {
			case *wire.BufferResponse:
				if !m.DataType.IsEvent() {
					got++
					ch.send(&wire.AddCredit{ReceiverID: ch.id, Credit: 1})
				}
			case *wire.ErrorResponse:
				t.Fatalf("healthy channel failed: %s %s", m.Code, m.Message)
			}
		case <-ctx.Done():
			t.Fatalf("healthy channel stalled after %d of %d buffers", got, n)
		}
	}
}

// channelError waits for the ErrorResponse that ends ch.
func channelError(t *testing.T, ctx context.Context, ch *rawChannel, peer string, part exchange.PartitionID) error {
	t.Helper()
	for {
		select {
		case m := <-ch.in:
			if e, ok := m.(*wire.ErrorResponse); ok {
				return exchange.ErrorFromWire(peer, part, e)
			}
		case <-ctx.Done():
			t.Fatal("the bad channel did not fail")
		}
	}
}

// readGate reads from g until each of its two channels delivered n
// records; a failed channel fails the test.
func readGate(t *testing.T, ctx context.Context, g *exchange.InputGate, n int) {
	t.Helper()
	var seen [2]int
	for seen[0] < n || seen[1] < n {
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatalf("gate after %v records per channel: %v", seen, err)
		}
		if e.Record != nil {
			seen[e.Channel]++
		}
	}
}

// copyMessage detaches a decoded message from its reader.
func copyMessage(m wire.Message) wire.Message {
	switch m := m.(type) {
	case *wire.BufferResponse:
		c := *m
		return &c
	case *wire.ErrorResponse:
		c := *m
		return &c
	case *wire.BacklogAnnouncement:
		c := *m
		return &c
	}
	return m
}

// --- TCP: one socket, channels told apart by receiverId.

type tcpConsumer struct {
	nc     net.Conn
	o      wire.Options
	routes chan map[wire.ID]chan wire.Message
	done   chan struct{}
}

func dialTCP(t *testing.T, addr string) rawConsumer {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &tcpConsumer{nc: nc, o: wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(segment)},
		routes: make(chan map[wire.ID]chan wire.Message, 1), done: make(chan struct{})}
	c.routes <- map[wire.ID]chan wire.Message{}
	c.write(wire.NewHello(c.o))
	rd := wire.NewReader(nc, c.o)
	if m, err := rd.Next(); err != nil || m.ID() != wire.IDHello {
		t.Fatalf("handshake: %v %v", m, err)
	}
	go func() {
		defer close(c.done)
		for {
			m, err := rd.Next()
			if err != nil {
				return
			}
			if br, ok := m.(*wire.BufferResponse); ok && rd.DiscardPayload() != nil {
				return
			} else if ok {
				m = br
			}
			var id wire.ID
			switch m := m.(type) {
			case *wire.BufferResponse:
				id = m.ReceiverID
			case *wire.ErrorResponse:
				id = m.ReceiverID
			case *wire.BacklogAnnouncement:
				id = m.ReceiverID
			}
			r := <-c.routes
			in := r[id]
			c.routes <- r
			if in != nil {
				select {
				case in <- copyMessage(m):
				default: // the test stopped reading this channel
				}
			}
		}
	}()
	return c
}

func (c *tcpConsumer) write(m wire.Message) { _, _ = c.nc.Write(wire.AppendFrame(nil, m, c.o)) }

func (c *tcpConsumer) open(t *testing.T, part exchange.PartitionID, sub int) *rawChannel {
	ch := &rawChannel{id: wire.ID(exchange.NewChannelID()), in: make(chan wire.Message, 1024), send: c.write}
	r := <-c.routes
	r[ch.id] = ch.in
	c.routes <- r
	c.write(&wire.PartitionRequest{PartitionID: wire.ID(part), Subpartition: int32(sub), ReceiverID: ch.id, Credit: 2})
	return ch
}

func (c *tcpConsumer) close() {
	c.nc.Close()
	<-c.done
}

// --- QUIC: one connection, a stream per channel.

var (
	certOnce sync.Once
	cert     tls.Certificate
	pin      [32]byte
	certErr  error
)

// quicConfig pins one certificate that every node presents.
func quicConfig(t *testing.T) quictransport.Config {
	certOnce.Do(func() { cert, pin, certErr = tlsconf.SelfSigned() })
	if certErr != nil {
		t.Fatal(certErr)
	}
	return quictransport.Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}}
}

type quicConsumer struct {
	conn *quic.Conn
	o    wire.Options
	strs []*quic.Stream
	done []chan struct{}
}

func dialQUIC(t *testing.T, addr string) rawConsumer {
	// The producer pins the certificate it presents; a raw consumer that
	// presents the same one is accepted.
	cfg := quicConfig(t)
	ctx := testCtx(t, 10*time.Second)
	conn, err := quic.DialAddr(ctx, addr, &tls.Config{
		Certificates: []tls.Certificate{*cfg.TLS.Certificate}, InsecureSkipVerify: true, NextProtos: []string{quictransport.ALPN},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &quicConsumer{conn: conn, o: wire.Options{StreamMode: true, MaxFrameSize: wire.MaxFrameSizeFor(segment)}}
}

func (c *quicConsumer) open(t *testing.T, part exchange.PartitionID, sub int) *rawChannel {
	str, err := c.conn.OpenStreamSync(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	hello := wire.NewHello(c.o)
	b := wire.AppendFrame(nil, &hello, c.o)
	b = wire.AppendFrame(b, &wire.PartitionRequest{PartitionID: wire.ID(part), Subpartition: int32(sub), Credit: 2}, c.o)
	if _, err := str.Write(b); err != nil {
		t.Fatal(err)
	}
	ch := &rawChannel{in: make(chan wire.Message, 1024), send: func(m wire.Message) { _, _ = str.Write(wire.AppendFrame(nil, m, c.o)) }}
	done := make(chan struct{})
	c.strs, c.done = append(c.strs, str), append(c.done, done)
	go func() {
		defer close(done)
		rd := wire.NewReader(str, c.o)
		for {
			m, err := rd.Next()
			if err != nil {
				return
			}
			if _, ok := m.(*wire.BufferResponse); ok && rd.DiscardPayload() != nil {
				return
			}
			select {
			case ch.in <- copyMessage(m):
			default:
			}
		}
	}()
	return ch
}

func (c *quicConsumer) close() {
	c.conn.CloseWithError(0, "test over")
	for _, d := range c.done {
		<-d
	}
}
