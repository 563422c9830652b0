package tcptransport

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
)

// dialFrom dials addr from the loopback address local (127.0.0.x), with
// the client's Hello when handshake is set.
func dialFrom(t *testing.T, local, addr string, handshake bool) *rawClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	o := wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(testSegment)}
	c := &rawClient{nc: nc, rd: wire.NewReader(nc, o), o: o}
	if handshake {
		c.write(t, c.frame(wire.NewHello(o)))
	}
	return c
}

// served reports whether the server answers c's Hello (it was admitted)
// or closes c at once (refused).
func served(t *testing.T, c *rawClient) bool {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := c.rd.Next()
	if err != nil {
		return false
	}
	if _, ok := m.(*wire.Hello); !ok {
		t.Fatalf("got %s, want Hello", m.ID())
	}
	return true
}

// TestConnectionCaps: connections above MaxConnectionsPerAddress (from
// one IP) or MaxConnections (on the node) are closed at once, while a
// healthy channel on the node keeps flowing.
func TestConnectionCaps(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx := testCtx(t, 30*time.Second)
	var log logBuf
	prod := newEnv(t, Config{MaxConnections: 3, MaxConnectionsPerAddress: 2}, &log)
	cons := newEnv(t, Config{}, nil)
	f := startFlow(t, prod, cons, "") // connection 1, from 127.0.0.1
	f.read(t, ctx, 100)
	for i, step := range []struct {
		from  string
		admit bool
	}{
		{"127.0.0.1", true},  // 2 from 127.0.0.1
		{"127.0.0.1", false}, // a third from one address
		{"127.0.0.2", true},  // 3 on the node
		{"127.0.0.3", false}, // a fourth on the node
	} {
		c := dialFrom(t, step.from, prod.Addr(), true)
		if got := served(t, c); got != step.admit {
			t.Fatalf("connection %d from %s: admitted %v, want %v", i+2, step.from, got, step.admit)
		}
		f.read(t, ctx, 100)
	}
	if n := tcpOf(prod).Stats().ConnectionsRefused; n != 2 {
		t.Errorf("ConnectionsRefused %d, want 2", n)
	}
	if !strings.Contains(log.String(), "too many connections") {
		t.Errorf("no warning about the refused connections; log:\n%s", log.String())
	}
	f.read(t, ctx, 500)
	f.close(t)
	prod.Close()
	cons.Close()
	checkG()
}

// TestIdleConnectionClosed: a connection that sent its Hello and holds
// no channel is closed after IdleConnectionTimeout; a connection with a
// channel is not, however long it runs.
func TestIdleConnectionClosed(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx := testCtx(t, 30*time.Second)
	const idle = 300 * time.Millisecond
	prod := newEnv(t, Config{IdleConnectionTimeout: idle}, nil)
	cons := newEnv(t, Config{}, nil)
	f := startFlow(t, prod, cons, "")
	// From before the dial: the server arms the timeout at its end of
	// the handshake, before dialRaw has read the server's Hello.
	start := time.Now()
	c := dialRaw(t, prod.Addr(), true)
	closed := make(chan time.Duration, 1)
	go func() {
		_ = c.nc.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			if _, err := c.rd.Next(); err != nil {
				break // closed by the server, or the deadline: checked below
			}
		}
		closed <- time.Since(start)
	}()
	// The healthy channel's connection outlives several idle timeouts.
	for time.Since(start) < 3*idle {
		f.read(t, ctx, 50)
	}
	select {
	case took := <-closed:
		t.Logf("idle connection closed after %v", took.Round(time.Millisecond))
		if took < idle || took > 10*time.Second {
			t.Errorf("closed after %v; want after the idle timeout %v, within seconds", took, idle)
		}
	case <-ctx.Done():
		t.Fatal("the idle connection was not closed")
	}
	f.read(t, ctx, 100)
	f.close(t)
	prod.Close()
	cons.Close()
	checkG()
}

// TestControlFlood: a peer that floods partition requests for unknown
// partitions and never reads the refusals gets its connection closed once
// MaxControlBytes are queued; a healthy channel on the node goes on.
func TestControlFlood(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx := testCtx(t, 30*time.Second)
	var log logBuf
	prod := newEnv(t, Config{MaxControlBytes: 64 << 10, SendBuffer: 16 << 10}, &log)
	cons := newEnv(t, Config{}, nil)
	f := startFlow(t, prod, cons, "")
	f.read(t, ctx, 100)
	c := dialRaw(t, prod.Addr(), true)
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4 << 10)
	}
	peer := c.nc.LocalAddr().String()
	unknown := wire.ID(exchange.NewPartitionID())
	batch := make([]byte, 0, 1000*64)
	for range 1000 {
		batch = append(batch, c.frame(&wire.PartitionRequest{PartitionID: unknown, ReceiverID: wire.ID(exchange.NewChannelID()), Credit: 2})...)
	}
	wrote := make(chan error, 1)
	go func() {
		// Until the server closes the connection; bounded by ctx.
		for ctx.Err() == nil {
			_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.nc.Write(batch); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- ctx.Err()
	}()
	for {
		if strings.Contains(log.String(), "MaxControlBytes") {
			break
		}
		f.read(t, ctx, 20) // the healthy channel flows meanwhile
	}
	if err := <-wrote; err == nil || ctx.Err() != nil {
		t.Fatalf("the flooding connection was not closed: %v", err)
	}
	var line string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "MaxControlBytes") {
			line = l
		}
	}
	if !strings.Contains(line, peer) {
		t.Errorf("the warning does not name the peer %s: %s", peer, line)
	}
	f.read(t, ctx, 200)
	f.close(t)
	prod.Close()
	cons.Close()
	checkG()
}
