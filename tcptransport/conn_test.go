package tcptransport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

// proxy forwards TCP connections to a target until killed.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
	}
}

// kill drops every connection abruptly (RST) and stops accepting.
func (p *proxy) kill() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// TestConnectionDropFailsChannels: when the connection carrying several
// channels drops mid-stream, every channel fails with a *ConnectionError
// naming the peer within 1 s, and the producer releases their readers.
func TestConnectionDropFailsChannels(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx := testCtx(t, 60*time.Second)
	prod := newEnv(t, Config{}, nil)
	cons := newEnv(t, Config{}, nil)
	px := newProxy(t, prod.Addr())
	const n = 4
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: n, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, n)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: px.addr()}
	}
	// No retries: a lost connection must surface, not be retried.
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: specs, InitialBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	writerDone := make(chan error, 1)
	go func() {
		w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
		rec := make([]byte, 500)
		for {
			if err := w.Emit(ctx, rec); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	for range 2000 {
		if _, err := g.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	px.kill()
	failed := map[int]bool{}
	for len(failed) < n {
		e, err := g.Next(ctx)
		if err == nil {
			continue // data that arrived before the drop
		}
		var ce *exchange.ConnectionError
		var che *exchange.ChannelError
		if !errors.As(err, &ce) || ce.Peer != px.addr() || !errors.As(err, &che) {
			t.Fatalf("Next: %v, want a ChannelError wrapping a *ConnectionError naming %s", err, px.addr())
		}
		failed[che.Index] = true
		_ = e
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("channels failed %v after the connection dropped, want < 1s", d)
	} else {
		t.Logf("all %d channels failed %v after the drop", n, d.Round(time.Microsecond))
	}
	g.Close()
	p.Release()
	if err := <-writerDone; !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("writer: %v", err)
	}
	prod.Close()
	cons.Close()
	transporttest.CheckPools(t, prod, cons)
	checkG()
}

// TestPortRange: Listen takes the first free port of the range.
func TestPortRange(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	lo := busy.Addr().(*net.TCPAddr).Port
	hi := min(lo+64, 65535)
	e := newEnv(t, Config{PortRange: fmt.Sprintf("%d-%d", lo, hi)}, nil)
	_, ps, _ := net.SplitHostPort(e.Addr())
	port, _ := strconv.Atoi(ps)
	if port <= lo || port > hi {
		t.Fatalf("listening on %s, want a port in %d-%d other than the busy %d", e.Addr(), lo+1, hi, lo)
	}
	// Every port before it is taken (normally none: it is lo+1).
	for q := lo + 1; q < port; q++ {
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(q))); err == nil {
			ln.Close()
			t.Fatalf("port %d was free but %d was taken", q, port)
		}
	}
	t.Logf("busy %d, took %d", lo, port)

	if _, err := newTransport(Config{PortRange: "9-5"}, exchange.TransportOptions{SegmentSize: testSegment}); !errors.Is(err, exchange.ErrInvalidConfig) {
		t.Fatalf("bad PortRange: %v, want ErrInvalidConfig", err)
	}
	// A range with no free port says so.
	tr, err := newTransport(Config{PortRange: fmt.Sprintf("%d-%d", lo, lo)}, exchange.TransportOptions{SegmentSize: testSegment, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Listen(testCtx(t, 10*time.Second), nopProvider{}); err == nil || !strings.Contains(err.Error(), strconv.Itoa(lo)) {
		t.Fatalf("Listen on a busy range: %v", err)
	}
}

type nopProvider struct{}

func (nopProvider) OpenView(exchange.ViewRequest, func(*exchange.SubpartitionView)) (*exchange.SubpartitionView, error) {
	return nil, &exchange.PartitionNotFoundError{}
}

func sockCongestion(t *testing.T, nc net.Conn) string {
	t.Helper()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var algo string
	var gerr error
	rc.Control(func(fd uintptr) { algo, gerr = congestion(int(fd)) })
	if gerr != nil {
		t.Fatal(gerr)
	}
	return algo
}

// TestSocketOptions: TCP_CONGESTION (and TCP_NODELAY) are set on both the
// dialed and the accepted socket; an unknown algorithm is a clear error.
func TestSocketOptions(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	cfg := Config{CongestionControl: "reno", SendBuffer: 1 << 20, ReceiveBuffer: 1 << 20}
	prod := newEnv(t, cfg, nil)
	cons := newEnv(t, cfg, nil)
	f := startFlow(t, prod, cons, "")
	f.read(t, ctx, 10)
	ct, st := tcpOf(cons), tcpOf(prod)
	var client net.Conn
	for _, c := range ct.peers.Conns() {
		client = c.nc
	}
	var server net.Conn
	for _, c := range st.node.Served() {
		server = c.nc
	}
	if client == nil || server == nil {
		t.Fatal("no connection")
	}
	for side, nc := range map[string]net.Conn{"dialed": client, "accepted": server} {
		if got := sockCongestion(t, nc); got != "reno" {
			t.Errorf("%s socket: TCP_CONGESTION %q, want reno", side, got)
		}
	}
	f.close(t)

	_, err := exchange.NewEnvironment(ctx, exchange.Config{
		SegmentSize: testSegment, Transport: New(Config{CongestionControl: "nosuchalgo"}),
	})
	if err == nil || !strings.Contains(err.Error(), `"nosuchalgo"`) || !strings.Contains(err.Error(), availableCongestionFile) {
		t.Fatalf("unknown congestion control: %v, want an error naming it and %s", err, availableCongestionFile)
	}
	t.Logf("unknown algorithm: %v", err)
}

// TestConnectionSharing: all channels to a node share one connection,
// which closes when its last channel is released; ConnectionsPerNode
// spreads channels over more.
func TestConnectionSharing(t *testing.T) {
	for _, per := range []int{1, 4} {
		t.Run(fmt.Sprintf("PerNode%d", per), func(t *testing.T) {
			checkG := transporttest.CheckGoroutines(t)
			ctx := testCtx(t, 60*time.Second)
			prod := newEnv(t, Config{}, nil)
			cons := newEnv(t, Config{ConnectionsPerNode: per}, nil)
			const n = 32
			p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: n, BufferTimeout: exchange.FlushFullBuffersOnly})
			if err != nil {
				t.Fatal(err)
			}
			specs := make([]exchange.ChannelSpec, n)
			for i := range specs {
				specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prod.Addr()}
			}
			g1, err := cons.CreateInputGate(exchange.GateConfig{Channels: specs[:n/2]})
			if err != nil {
				t.Fatal(err)
			}
			g2, err := cons.CreateInputGate(exchange.GateConfig{Channels: specs[n/2:]})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				// No Finish: EndOfPartition would release the channels.
				w := exchange.NewRecordWriter(p, exchange.Broadcast{})
				w.Emit(ctx, []byte("hello"))
				w.Flush()
			}()
			for _, g := range []*exchange.InputGate{g1, g2} {
				for got := 0; got < n/2; {
					e, err := g.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if e.Event != nil {
						continue
					}
					if string(e.Record) != "hello" {
						t.Fatalf("Next: %q", e.Record)
					}
					got++
				}
			}
			ct, st := tcpOf(cons), tcpOf(prod)
			dialed := ct.Stats().ConnectionsDialed
			if per == 1 && dialed != 1 || per > 1 && (dialed < 2 || dialed > int64(per)) {
				t.Fatalf("%d connections for %d channels with ConnectionsPerNode %d", dialed, n, per)
			}
			if acc := st.Stats().ConnectionsAccepted; acc != dialed {
				t.Fatalf("server accepted %d connections, client dialed %d", acc, dialed)
			}
			clients := ct.peers.Conns()
			served := st.node.Served()
			// Releasing one gate keeps the connection(s) of the other.
			g1.Close()
			if per == 1 {
				refs := ct.peers.Refs(clients[0])
				if refs != n/2 {
					t.Fatalf("connection has %d references with one gate of %d channels left", refs, n/2)
				}
			}
			g2.Close()
			// The last release closes them: CloseRequest, then both sides end.
			for _, c := range clients {
				select {
				case <-c.done:
				case <-ctx.Done():
					t.Fatal("client connection not closed after its last channel")
				}
			}
			for _, c := range served {
				select {
				case <-c.done:
				case <-ctx.Done():
					t.Fatal("server connection not closed after the client's CloseRequest")
				}
			}
			left := len(ct.peers.Conns())
			if left != 0 {
				t.Fatalf("%d client connections left", left)
			}
			p.Release()
			prod.Close()
			cons.Close()
			checkG()
		})
	}
}
