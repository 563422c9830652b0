package transporttest_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/transporttest/faultproxy"
	"github.com/qexchange/qexchange/exchange/wire"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// claimFrame is a Hello followed by the header of a frame that claims the
// largest size the peer allows and a few bytes of its body: the rest
// never comes (a slowloris after Hello).
func claimFrame(o wire.Options) []byte {
	b := wire.AppendFrame(nil, wire.NewHello(o), o)
	hdr := len(b)
	b = append(b, 0, 0, 0, 0, 0xBA, 0xDC, 0x0F, 0xFE, byte(wire.IDTaskEventRequest))
	binary.BigEndian.PutUint32(b[hdr:], uint32(o.EffectiveMaxFrameSize()))
	return append(b, make([]byte, 100)...)
}

func tcpFactory() exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) }

// beginAttack starts, with default configs on one transport, a producer
// node (the one attacked), a consumer node and a healthy channel between
// them; it measures the channel's rate, then starts the probe. The test
// gets a minute and a goroutine leak check.
func beginAttack(t *testing.T, factory func() exchange.TransportFactory) (ctx context.Context, prod *exchange.Environment, healthy *healthyFlow, before []float64, probe *memProbe) {
	t.Helper()
	t.Cleanup(transporttest.CheckGoroutines(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	prod = transporttest.NewEnv(t, ctx, exchange.Config{Transport: factory()})
	cons := transporttest.NewEnv(t, ctx, exchange.Config{Transport: factory()})
	healthy = startHealthy(t, ctx, prod, cons)
	return ctx, prod, healthy, healthy.rate(), startProbe()
}

// TestAttackQUICStreamClaims: one peer opens 10^4 streams to a producer
// node with default settings, and on each sends a Hello and the start of
// a frame claiming the largest size. The node accepts at most
// MaxIncomingStreams (8192) of them, reads at most MaxHandshakingStreams
// (64) at once, growing each frame body only as its bytes arrive, so its
// goroutines and memory stay bounded; a healthy consumer of the node
// keeps its throughput and completes.
func TestAttackQUICStreamClaims(t *testing.T) {
	cfg := quicConfig(t)
	ctx, prod, healthy, before, probe := beginAttack(t, func() exchange.TransportFactory { return quictransport.New(cfg) })

	attacker, err := quic.DialAddr(ctx, prod.Addr(), &tls.Config{Certificates: []tls.Certificate{*cfg.TLS.Certificate},
		InsecureSkipVerify: true, NextProtos: []string{quictransport.ALPN}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.CloseWithError(0, "test over")
	claim := claimFrame(wire.Options{StreamMode: true, MaxFrameSize: wire.MaxFrameSizeFor(exchange.DefaultSegmentSize)})
	const streams = 10_000
	opened := 0
	start := time.Now()
	for range streams {
		s, err := attacker.OpenStream()
		if err != nil {
			break // the node's MaxIncomingStreams: quic-go will not open more
		}
		opened++
		if _, err := s.Write(claim); err != nil {
			t.Fatalf("stream %d: %v", opened, err)
		}
	}
	t.Logf("%d of %d streams opened in %v", opened, streams, time.Since(start).Round(time.Millisecond))
	if opened > quictransport.DefaultMaxIncomingStreams {
		t.Errorf("the node let one peer open %d streams; MaxIncomingStreams is %d", opened, quictransport.DefaultMaxIncomingStreams)
	}
	healthy.waitRecords(t, ctx, 1000) // the node served the claims it would meanwhile
	during := healthy.rate()
	_, _, g := probe.finish(t)
	if g > 4*quictransport.DefaultMaxHandshakingStreams+50 {
		t.Errorf("%d claiming streams made %d goroutines; want them bounded by MaxHandshakingStreams %d", opened, g, quictransport.DefaultMaxHandshakingStreams)
	}
	attacker.CloseWithError(0, "test over")
	checkRatio(t, before, during, healthy.rate())
	healthy.finish(t)
}

// TestAttackTCPConnectionFlood: peers from 9 loopback addresses open 128
// connections each (1152 in all) to a producer node with default
// settings, each sending a Hello and the start of a frame claiming the
// largest size, then nothing (a slowloris after Hello). The node serves at
// most MaxConnectionsPerAddress (128) from one address and MaxConnections
// (1024) in all, closing the rest at once; what it holds stays bounded;
// a healthy consumer of the node keeps its throughput and completes. The
// idle connections are closed after IdleConnectionTimeout (1 min by
// default; TestIdleConnectionClosed in tcptransport times it).
func TestAttackTCPConnectionFlood(t *testing.T) {
	ctx, prod, healthy, before, probe := beginAttack(t, tcpFactory)

	claim := claimFrame(wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(exchange.DefaultSegmentSize)})
	const addrs, perAddr = 9, tcptransport.DefaultMaxConnectionsPerAddress
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	start := time.Now()
	for a := range addrs {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(a+1))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
			for range perAddr {
				c, err := d.DialContext(ctx, "tcp", prod.Addr())
				if err != nil {
					continue // refused at the listener's backlog: counted as not served
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				_, _ = c.Write(claim) // a refused connection may be closed already
			}
		}()
	}
	wg.Wait()
	// A served connection gets the node's Hello; a refused one is closed.
	served := 0
	var sw sync.WaitGroup
	var smu sync.Mutex
	for _, c := range conns {
		sw.Add(1)
		go func() {
			defer sw.Done()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			rd := wire.NewReader(c, wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(exchange.DefaultSegmentSize)})
			if m, err := rd.Next(); err == nil && m.ID() == wire.IDHello {
				smu.Lock()
				served++
				smu.Unlock()
			}
		}()
	}
	sw.Wait()
	t.Logf("%d connections from %d addresses in %v: %d served", len(conns), addrs, time.Since(start).Round(time.Millisecond), served)
	// The healthy channel's connection is one of the node's 1024.
	if served > tcptransport.DefaultMaxConnections-1 || served < tcptransport.DefaultMaxConnections/2 {
		t.Errorf("%d attacking connections served; want at most MaxConnections-1 = %d (and most of them)", served, tcptransport.DefaultMaxConnections-1)
	}
	healthy.waitRecords(t, ctx, 1000)
	during := healthy.rate()
	// Once the refused ones are gone, a served connection is a reader and
	// a writer goroutine (the peak also counts the refused ones closing).
	held := runtime.NumGoroutine() - probe.g0
	probe.finish(t)
	t.Logf("goroutines held by the %d served connections: %d", served, held)
	if held > 2*tcptransport.DefaultMaxConnections+100 {
		t.Errorf("%d connections hold %d goroutines; want them bounded by 2 x MaxConnections", len(conns), held)
	}
	for _, c := range conns {
		c.Close()
	}
	checkRatio(t, before, during, healthy.rate())
	healthy.finish(t)
}

// TestAttackTCPControlFlood: a peer floods a producer node (default
// settings) with partition requests for unknown partitions and never
// reads the refusals, and reconnects to flood again each time it is cut
// off (10 times a second at most). The node closes each flooding
// connection once MaxControlBytes (1 MiB) of refusals are queued: the time
// to detect is measured from a flood's start to the peer's first failed
// write. A healthy consumer of
// the node keeps its throughput while the floods go on, and completes.
func TestAttackTCPControlFlood(t *testing.T) {
	ctx, prod, healthy, before, probe := beginAttack(t, tcpFactory)

	o := wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(exchange.DefaultSegmentSize)}
	batch := wire.AppendFrame(nil, wire.NewHello(o), o)
	unknown := wire.ID(exchange.NewPartitionID())
	for range 1000 {
		batch = wire.AppendFrame(batch, &wire.PartitionRequest{PartitionID: unknown, ReceiverID: wire.ID(exchange.NewChannelID()), Credit: 2}, o)
	}
	// flood sends batches on one connection until the node closes it, and
	// returns how long that took.
	flood := func(actx context.Context) (time.Duration, error) {
		nc, err := net.DialTimeout("tcp", prod.Addr(), 10*time.Second)
		if err != nil {
			return 0, err
		}
		defer nc.Close()
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10) // the refusals pile up at the node, not here
		}
		start := time.Now()
		for actx.Err() == nil {
			_ = nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := nc.Write(batch); err != nil {
				return time.Since(start), nil
			}
		}
		return time.Since(start), actx.Err()
	}
	actx, stop := context.WithCancel(ctx)
	detections := make(chan []time.Duration, 1)
	go func() {
		var ds []time.Duration
		for {
			d, err := flood(actx)
			if err != nil {
				detections <- ds
				return
			}
			ds = append(ds, d)
			// Paced: the attacker runs on the node's own two cores, where
			// an unpaced loop would measure CPU sharing, not the node.
			select {
			case <-time.After(100 * time.Millisecond):
			case <-actx.Done():
			}
		}
	}()
	healthy.waitRecords(t, ctx, 1000)
	during := healthy.rate()
	stop()
	ds := <-detections
	probe.finish(t)
	if len(ds) == 0 {
		t.Fatal("no flooding connection was closed while the healthy channel was measured")
	}
	slices.Sort(ds)
	t.Logf("%d flooding connections closed; time to detect: median %v, max %v", len(ds), ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
	if ds[len(ds)-1] > 10*time.Second {
		t.Errorf("a flood went on for %v; want each connection closed within 10 s", ds[len(ds)-1])
	}
	checkRatio(t, before, during, healthy.rate())
	healthy.finish(t)
}

// TestAttackConsumerKilledMidStream: a consumer's connection to a producer
// node (default settings) is reset mid-stream, as when its process is
// killed. The producer notices and releases the consumer's subpartition;
// the time to detect is from the reset to the first request for that
// subpartition that is no longer refused as already consumed. A healthy
// consumer of the node keeps its throughput and completes.
func TestAttackConsumerKilledMidStream(t *testing.T) {
	victim := transporttest.NewEnv(t, context.Background(), exchange.Config{Transport: tcpFactory()}) // its network memory is not the attacked node's
	ctx, prod, healthy, before, probe := beginAttack(t, tcpFactory)

	proxy, err := faultproxy.NewTCP(prod.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	stopWriter := transporttest.EmitUntilStopped(ctx, p, 0)
	// firstRecord opens a gate on the subpartition through addr and
	// returns it after its first record, or the error of its first Next.
	firstRecord := func(cons *exchange.Environment, addr string) (*exchange.InputGate, error) {
		g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: addr}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Next(ctx); err != nil {
			g.Close()
			return nil, err
		}
		return g, nil
	}
	killed, err := firstRecord(victim, proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if _, err := killed.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	proxy.Cut()
	// The subpartition takes one consumer: a new one is refused as
	// ErrAlreadyConsumed while the producer still serves the killed one;
	// once it has let it go (releasing the pipelined subpartition, which
	// is read once), the answer is that the subpartition was cancelled.
	var (
		answer   error
		refusals int
	)
	for {
		g, err := firstRecord(healthy.cons, prod.Addr())
		if err == nil {
			g.Close()
			t.Fatal("a new consumer read the killed consumer's subpartition")
		}
		if !errors.Is(err, exchange.ErrAlreadyConsumed) || ctx.Err() != nil {
			answer = err
			break
		}
		refusals++
		time.Sleep(10 * time.Millisecond) // retry pacing
	}
	detect := time.Since(start)
	t.Logf("the producer let the killed consumer go after %v (%d refusals meanwhile): %v", detect.Round(time.Millisecond), refusals, answer)
	if !errors.Is(answer, exchange.ErrRemote) || ctx.Err() != nil {
		t.Fatalf("new consumer: %v; want the producer's answer that the subpartition is gone", answer)
	}
	if detect > 5*time.Second {
		t.Errorf("the killed consumer held its subpartition for %v; want under 5 s", detect)
	}
	// The killed consumer's writer is stopped first: it runs on the same
	// cores and is not the attack.
	stopWriter()
	during := healthy.rate()
	killed.Close()
	probe.finish(t)
	checkRatio(t, before, during, healthy.rate())
	healthy.finish(t)
}
