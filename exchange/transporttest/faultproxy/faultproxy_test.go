package faultproxy_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/transporttest/faultproxy"
)

// echoTCP serves TCP echo on loopback until the test ends.
func echoTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func dialEcho(t *testing.T, addr, msg string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo through proxy: %q, %v", got, err)
	}
	return c
}

// TestTCPCutIf: a selective cut resets exactly the chosen connection;
// the others keep relaying; Close cuts the rest and leaves no goroutine.
func TestTCPCutIf(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	p, err := faultproxy.NewTCP(echoTCP(t))
	if err != nil {
		t.Fatal(err)
	}
	a := dialEcho(t, p.Addr(), "first")
	b := dialEcho(t, p.Addr(), "second")
	if n := p.Conns(); n != 2 {
		t.Fatalf("Conns = %d, want 2", n)
	}
	if n := p.CutIf(func(c faultproxy.ConnInfo) bool { return c.Index == 0 }); n != 1 {
		t.Fatalf("CutIf cut %d connections, want 1", n)
	}
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("cut connection still readable")
	}
	if _, err := b.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "still" {
		t.Fatalf("uncut connection: %q, %v", got, err)
	}
	if p.Relayed() < int64(2*len("firstsecondstill")) {
		t.Fatalf("Relayed = %d, want at least both directions of every echo", p.Relayed())
	}
	p.Cut()
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection readable after Cut")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
	checkG()
}

// udpEcho echoes datagrams on loopback until the test ends.
func udpEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String()
}

// TestUDPLossAndBlackhole sends datagrams one at a time (each waits for
// its echo or a short timeout), so every loss is the rule's.
func TestUDPLossAndBlackhole(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	const rate, n = 0.1, 400
	p, err := faultproxy.NewUDP(udpEcho(t), faultproxy.RandomLoss(rate, 7))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoed := 0
	buf := make([]byte, 64)
	for i := range n {
		msg := []byte{byte(i), byte(i >> 8)}
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		m, err := c.Read(buf)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
		case err != nil:
			t.Fatal(err)
		case bytes.Equal(buf[:m], msg):
			echoed++
		}
	}
	relayed, dropped := p.Stats()
	// Each round trip survives with (1-rate)^2 = 0.81: expect ~324 of 400.
	if echoed < 280 || echoed > 370 {
		t.Fatalf("%d of %d echoed at %.0f%% loss each way (relayed %d, dropped %d)", echoed, n, rate*100, relayed, dropped)
	}
	if dropped == 0 || relayed+dropped < n {
		t.Fatalf("stats: relayed %d, dropped %d", relayed, dropped)
	}
	p.Cut()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("a datagram passed a blackholed proxy")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkG()
}

// TestRandomLossIsSeeded: the same seed drops the same datagrams, and
// the rate is close to the one asked for.
func TestRandomLossIsSeeded(t *testing.T) {
	a, b, other := faultproxy.RandomLoss(0.02, 1), faultproxy.RandomLoss(0.02, 1), faultproxy.RandomLoss(0.02, 2)
	drops, differ := 0, 0
	const n = 100_000
	for i := range uint64(n) {
		d := faultproxy.Datagram{Dir: faultproxy.Direction(i % 2), Seq: i / 2, Len: 1200}
		if a(d) != b(d) {
			t.Fatalf("same seed, different decision for %+v", d)
		}
		if a(d) {
			drops++
		}
		if a(d) != other(d) {
			differ++
		}
	}
	if drops < n*15/1000 || drops > n*25/1000 {
		t.Fatalf("%d drops of %d at 2%%", drops, n)
	}
	if differ == 0 {
		t.Fatal("different seeds drop the same datagrams")
	}
}
