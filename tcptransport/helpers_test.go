package tcptransport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
)

// testSegment is the segment size of the tests' environments.
const testSegment = 8 << 10

// logBuf collects a transport's logs for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newEnv creates a node on the tcp transport; it is closed and checked
// for leaked buffers when the test ends.
func newEnv(t testing.TB, cfg Config, log io.Writer) *exchange.Environment {
	t.Helper()
	var lg zerolog.Logger
	if log != nil {
		lg = zerolog.New(log)
	} else {
		lg = zerolog.Nop()
	}
	e, err := exchange.NewEnvironment(context.Background(), exchange.Config{
		NetworkMemory: 8 << 20,
		SegmentSize:   testSegment,
		Transport:     New(cfg),
		Logger:        lg,
	})
	if err != nil {
		t.Fatalf("NewEnvironment: %v", err)
	}
	t.Cleanup(func() {
		e.Close()
		transporttest.CheckPools(t, e)
	})
	return e
}

func tcpOf(e *exchange.Environment) *Transport { return e.Transport().(*Transport) }

// flow is a healthy exchange between two nodes: a writer emitting numbered
// records to a partition with one subpartition, read by a remote gate.
type flow struct {
	prod, cons *exchange.Environment
	p          *exchange.ResultPartition
	g          *exchange.InputGate
	next       uint64
	stop       context.CancelFunc
	done       chan error
}

func startFlow(t *testing.T, prod, cons *exchange.Environment, addr string) *flow {
	t.Helper()
	if addr == "" {
		addr = prod.Addr()
	}
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: addr}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	f := &flow{prod: prod, cons: cons, p: p, g: g, stop: stop, done: make(chan error, 1)}
	go func() {
		rec := make([]byte, 200)
		for i := uint64(0); ; i++ {
			binary.BigEndian.PutUint64(rec, i)
			if err := p.EmitTo(ctx, 0, rec); err != nil {
				f.done <- err
				return
			}
		}
	}()
	return f
}

// read reads n more records and checks their order.
func (f *flow) read(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for range n {
		e, err := f.g.Next(ctx)
		if err != nil {
			t.Fatalf("healthy channel: %v", err)
		}
		if e.Event != nil {
			continue
		}
		if got := binary.BigEndian.Uint64(e.Record); got != f.next {
			t.Fatalf("healthy channel: record %d, want %d", got, f.next)
		}
		f.next++
	}
}

func (f *flow) close(t *testing.T) {
	t.Helper()
	f.stop()
	if err := <-f.done; !errors.Is(err, context.Canceled) && !errors.Is(err, exchange.ErrClosed) {
		t.Errorf("writer: %v", err)
	}
	f.g.Close()
	f.p.Release()
}

// rawClient is a hand-driven client connection that writes crafted frames.
type rawClient struct {
	nc net.Conn
	rd *wire.Reader
	o  wire.Options
}

func dialRaw(t *testing.T, addr string, handshake bool) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	o := wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(testSegment)}
	c := &rawClient{nc: nc, rd: wire.NewReader(nc, o), o: o}
	if handshake {
		c.write(t, wire.AppendFrame(nil, wire.NewHello(o), o))
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := c.rd.Next()
		if err != nil {
			t.Fatalf("raw handshake: %v", err)
		}
		if _, ok := m.(*wire.Hello); !ok {
			t.Fatalf("raw handshake: got %s, want Hello", m.ID())
		}
	}
	return c
}

func (c *rawClient) write(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		if _, err := c.nc.Write(f); err != nil {
			t.Fatalf("raw write: %v", err)
		}
	}
}

func (c *rawClient) frame(m wire.Message) []byte { return wire.AppendFrame(nil, m, c.o) }

// expectClosed reads until the server closes the connection (EOF or
// reset within a bounded time) and returns the fatal ErrorResponse it
// sent before, if any.
func (c *rawClient) expectClosed(t *testing.T) *wire.ErrorResponse {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
	var fatal *wire.ErrorResponse
	for {
		m, err := c.rd.Next()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server did not close the bad connection: %v", err)
			}
			return fatal // io.EOF, a reset, or the end of the stream inside a frame
		}
		switch m := m.(type) {
		case *wire.BufferResponse:
			if err := c.rd.DiscardPayload(); err != nil {
				return fatal
			}
		case *wire.ErrorResponse:
			if m.Fatal {
				e := *m
				fatal = &e
			}
		}
	}
}
