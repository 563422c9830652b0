package tcptransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
)

// mockHandler is a ChannelHandler with a fixed data credit.
type mockHandler struct {
	mu     sync.Mutex
	credit int
	got    chan []byte
	errs   chan error
}

func newMock(credit int) *mockHandler {
	return &mockHandler{credit: credit, got: make(chan []byte, 16), errs: make(chan error, 1)}
}

func (h *mockHandler) RequestBuffer(dt wire.DataType, size int) (exchange.Buffer, error) {
	if !dt.IsEvent() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.credit == 0 {
			return exchange.Buffer{}, fmt.Errorf("%w: data buffer without credit", exchange.ErrProtocol)
		}
		h.credit--
	}
	return exchange.NewUnpooledBuffer(make([]byte, size), dt), nil
}

func (h *mockHandler) OnBuffer(b exchange.Buffer, seq int32, backlog int) {
	h.got <- append([]byte(nil), b.Bytes()...)
	b.Release()
}
func (h *mockHandler) OnBacklog(int)              {}
func (h *mockHandler) TakeUnannouncedCredit() int { return 0 }
func (h *mockHandler) OnError(err error) {
	select {
	case h.errs <- err:
	default:
		panic("OnError called twice")
	}
}

func (h *mockHandler) wantErr(t *testing.T, ctx context.Context, peer string, target error) error {
	t.Helper()
	select {
	case err := <-h.errs:
		var pe *exchange.ProtocolError
		if !errors.As(err, &pe) || pe.Peer != peer || !errors.Is(err, exchange.ErrProtocol) || !errors.Is(err, target) {
			t.Fatalf("channel failed with %v; want a *ProtocolError from %s wrapping %v", err, peer, target)
		}
		return err
	case <-ctx.Done():
		t.Fatalf("channel did not fail (want %v)", target)
	}
	return nil
}

// fakeServer is a hand-driven server: it accepts one connection and
// exchanges Hellos (unless told otherwise).
type fakeServer struct {
	ln   net.Listener
	addr string
	o    wire.Options
}

func newFakeServer(t *testing.T) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return &fakeServer{ln: ln, addr: ln.Addr().String(), o: wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(testSegment)}}
}

// accept takes the client's connection and reads its Hello; hello, if
// not nil, is sent as the answer.
func (s *fakeServer) accept(t *testing.T, hello []byte) (net.Conn, *wire.Reader) {
	t.Helper()
	nc, err := s.ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	rd := wire.NewReader(nc, s.o)
	m, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*wire.Hello); !ok {
		t.Fatalf("client sent %s first, want Hello", m.ID())
	}
	if hello != nil {
		if _, err := nc.Write(hello); err != nil {
			t.Fatal(err)
		}
	}
	return nc, rd
}

func (s *fakeServer) hello() []byte { return wire.AppendFrame(nil, wire.NewHello(s.o), s.o) }

// next reads the client's next message, skipping AddCredit.
func next(t *testing.T, rd *wire.Reader) wire.Message {
	t.Helper()
	for {
		m, err := rd.Next()
		if err != nil {
			t.Fatalf("fake server read: %v", err)
		}
		if m.ID() != wire.IDAddCredit {
			return m
		}
	}
}

func clientTransport(t *testing.T) *Transport {
	t.Helper()
	tr, err := newTransport(Config{}, exchange.TransportOptions{SegmentSize: testSegment, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func open(t *testing.T, ctx context.Context, tr *Transport, addr string, credit int) (*mockHandler, exchange.ChannelLink, wire.ID) {
	t.Helper()
	h := newMock(credit)
	req := exchange.ChannelRequest{Partition: exchange.NewPartitionID(), Receiver: exchange.NewChannelID(), InitialCredit: credit}
	l, err := tr.OpenChannel(ctx, addr, req, h)
	if err != nil {
		t.Fatal(err)
	}
	return h, l, wire.ID(req.Receiver)
}

func bufferFrame(o wire.Options, id wire.ID, seq int32, payload []byte) []byte {
	m := wire.BufferResponse{ReceiverID: id, Sequence: seq, DataType: wire.DataBuffer, Size: int32(len(payload))}
	return append(wire.AppendFrame(nil, &m, o), payload...)
}

// TestClientBadInput: a fake server sends bad frames; the right channels
// fail with a *ProtocolError naming the server.
func TestClientBadInput(t *testing.T) {
	t.Run("WrongMagic", func(t *testing.T) {
		checkG := transporttest.CheckGoroutines(t)
		ctx := testCtx(t, 30*time.Second)
		srv := newFakeServer(t)
		tr := clientTransport(t)
		accepted := make(chan struct{})
		go func() {
			nc, rd := srv.accept(t, srv.hello())
			next(t, rd)
			next(t, rd)
			bad := wire.AppendFrame(nil, &wire.BacklogAnnouncement{Backlog: 1}, srv.o)
			bad[4] ^= 0xff
			nc.Write(bad)
			close(accepted)
		}()
		h1, l1, _ := open(t, ctx, tr, srv.addr, 2)
		h2, l2, _ := open(t, ctx, tr, srv.addr, 2)
		<-accepted
		h1.wantErr(t, ctx, srv.addr, wire.ErrBadMagic)
		h2.wantErr(t, ctx, srv.addr, wire.ErrBadMagic)
		l1.Close()
		l2.Close()
		tr.Close()
		checkG()
	})
	t.Run("WrongMagicInHandshake", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		srv := newFakeServer(t)
		tr := clientTransport(t)
		go func() {
			h := srv.hello()
			h[5] ^= 0xff
			srv.accept(t, h)
		}()
		_, err := tr.OpenChannel(ctx, srv.addr, exchange.ChannelRequest{Receiver: exchange.NewChannelID()}, newMock(0))
		var pe *exchange.ProtocolError
		if !errors.As(err, &pe) || pe.Peer != srv.addr || !errors.Is(err, wire.ErrBadMagic) {
			t.Fatalf("OpenChannel: %v, want a *ProtocolError from %s wrapping wire.ErrBadMagic", err, srv.addr)
		}
	})
	t.Run("VersionMismatch", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		srv := newFakeServer(t)
		tr := clientTransport(t)
		gotFatal := make(chan wire.ErrorCode, 1)
		go func() {
			h := wire.NewHello(srv.o)
			h.Version = 2
			_, rd := srv.accept(t, wire.AppendFrame(nil, h, srv.o))
			m, err := rd.Next()
			if e, ok := m.(*wire.ErrorResponse); ok && err == nil && e.Fatal {
				gotFatal <- e.Code
			}
			close(gotFatal)
		}()
		_, err := tr.OpenChannel(ctx, srv.addr, exchange.ChannelRequest{Receiver: exchange.NewChannelID()}, newMock(0))
		if !errors.Is(err, wire.ErrVersionMismatch) || !strings.Contains(err.Error(), srv.addr) {
			t.Fatalf("OpenChannel: %v, want a version mismatch naming %s", err, srv.addr)
		}
		if code := <-gotFatal; code != wire.CodeVersionMismatch {
			t.Fatalf("client answered with code %s, want a fatal VersionMismatch", code)
		}
	})
	t.Run("UnknownReceiver", func(t *testing.T) {
		checkG := transporttest.CheckGoroutines(t)
		ctx := testCtx(t, 30*time.Second)
		srv := newFakeServer(t)
		tr := clientTransport(t)
		go func() {
			nc, rd := srv.accept(t, srv.hello())
			next(t, rd)
			next(t, rd)
			nc.Write(bufferFrame(srv.o, wire.ID(exchange.NewChannelID()), 0, []byte("who?")))
		}()
		h1, l1, _ := open(t, ctx, tr, srv.addr, 2)
		h2, l2, _ := open(t, ctx, tr, srv.addr, 2)
		err := h1.wantErr(t, ctx, srv.addr, wire.ErrProtocol)
		h2.wantErr(t, ctx, srv.addr, wire.ErrProtocol)
		if !strings.Contains(err.Error(), "unknown receiver") {
			t.Fatalf("error %q does not say what was wrong", err)
		}
		l1.Close()
		l2.Close()
		tr.Close()
		checkG()
	})
	t.Run("DataBeyondCredit", func(t *testing.T) {
		checkG := transporttest.CheckGoroutines(t)
		ctx := testCtx(t, 30*time.Second)
		srv := newFakeServer(t)
		tr := clientTransport(t)
		type conn struct {
			nc net.Conn
			rd *wire.Reader
		}
		connC := make(chan conn, 1)
		go func() {
			nc, rd := srv.accept(t, srv.hello())
			connC <- conn{nc, rd}
		}()
		h1, l1, id1 := open(t, ctx, tr, srv.addr, 1)
		h2, l2, id2 := open(t, ctx, tr, srv.addr, 1)
		c := <-connC
		next(t, c.rd)
		next(t, c.rd)
		// Two data buffers on one credit: the channel fails, alone.
		c.nc.Write(append(bufferFrame(srv.o, id1, 0, []byte("one")), bufferFrame(srv.o, id1, 1, []byte("two"))...))
		if got := string(<-h1.got); got != "one" {
			t.Fatalf("got %q", got)
		}
		err := h1.wantErr(t, ctx, srv.addr, exchange.ErrProtocol)
		if !strings.Contains(err.Error(), "without credit") {
			t.Fatalf("error %q does not say what was wrong", err)
		}
		// The client cancels the failed channel's request...
		if m, ok := next(t, c.rd).(*wire.CancelPartitionRequest); !ok || m.ReceiverID != id1 {
			t.Fatalf("client sent %v, want CancelPartitionRequest for %s", m, id1)
		}
		// ...late frames for it are dropped, and the other channel works.
		c.nc.Write(append(bufferFrame(srv.o, id1, 2, []byte("late")), bufferFrame(srv.o, id2, 0, []byte("fine"))...))
		select {
		case got := <-h2.got:
			if string(got) != "fine" {
				t.Fatalf("got %q", got)
			}
		case err := <-h2.errs:
			t.Fatalf("healthy channel failed: %v", err)
		case <-ctx.Done():
			t.Fatal("healthy channel got nothing")
		}
		l1.Close()
		l2.Close()
		// The last channel gone, the client closes: CloseRequest, then EOF.
		for {
			m, err := c.rd.Next()
			if err != nil {
				t.Fatalf("read: %v, want CloseRequest", err)
			}
			if m.ID() == wire.IDCloseRequest {
				break
			}
		}
		if _, err := c.rd.Next(); err == nil {
			t.Fatal("connection still open after CloseRequest")
		}
		tr.Close()
		checkG()
	})
}

// TestDialFailure: an unreachable node is a *ConnectionError naming it.
func TestDialFailure(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tr := clientTransport(t)
	_, err = tr.OpenChannel(ctx, addr, exchange.ChannelRequest{Receiver: exchange.NewChannelID()}, newMock(0))
	var ce *exchange.ConnectionError
	if !errors.As(err, &ce) || ce.Peer != addr || !errors.Is(err, exchange.ErrConnectionLost) {
		t.Fatalf("OpenChannel: %v, want a *ConnectionError naming %s", err, addr)
	}
}
