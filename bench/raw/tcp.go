package raw

import (
	"context"
	"fmt"
	"net"
	"time"
)

// TCPOptions mirror the TCP transport's socket options (tcptransport
// defaults: TCP_NODELAY on, keepalive 15 s, kernel buffer autotuning).
type TCPOptions struct {
	DisableNoDelay            bool
	KeepAlive                 time.Duration
	SendBuffer, ReceiveBuffer int
	// Dial and Listen create the sockets (default: net); the link
	// emulator plugs in here as in the TCP transport.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Listen func(network, addr string) (net.Listener, error)
	// Addr is the address to listen on (default 127.0.0.1:0).
	Addr string
	// CongestionControl sets TCP_CONGESTION on both sockets, as the TCP
	// transport's option of that name ("" keeps the kernel's default).
	CongestionControl string
}

func (t TCPOptions) tune(c *net.TCPConn) error {
	if t.CongestionControl != "" {
		if err := setCongestion(c, t.CongestionControl); err != nil {
			return fmt.Errorf("TCP_CONGESTION %s: %w", t.CongestionControl, err)
		}
	}
	if err := c.SetNoDelay(!t.DisableNoDelay); err != nil {
		return err
	}
	if t.KeepAlive > 0 {
		if err := c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: t.KeepAlive, Interval: t.KeepAlive, Count: -1}); err != nil {
			return err
		}
	}
	if t.SendBuffer > 0 {
		if err := c.SetWriteBuffer(t.SendBuffer); err != nil {
			return err
		}
	}
	if t.ReceiveBuffer > 0 {
		if err := c.SetReadBuffer(t.ReceiveBuffer); err != nil {
			return err
		}
	}
	return nil
}

// TCP runs the raw TCP baseline on loopback: the accepting side writes
// (like the exchange's producer, which serves), the dialing side reads.
func TCP(ctx context.Context, o Options, to TCPOptions) (*Result, error) {
	listen, addr := to.Listen, to.Addr
	if listen == nil {
		listen = net.Listen
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("raw-tcp: listen: %w", err)
	}
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	dial := to.Dial
	if dial == nil {
		d := net.Dialer{KeepAlive: -1, Timeout: 10 * time.Second}
		dial = d.DialContext
	}
	rc, err := dial(ctx, "tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-ch
		return nil, fmt.Errorf("raw-tcp: dial: %w", err)
	}
	a := <-ch
	ln.Close()
	if a.err != nil {
		rc.Close()
		return nil, fmt.Errorf("raw-tcp: accept: %w", a.err)
	}
	wc, ok := a.c.(*net.TCPConn)
	if !ok {
		a.c.Close()
		rc.Close()
		return nil, fmt.Errorf("raw-tcp: accepted a %T, want *net.TCPConn", a.c)
	}
	for _, c := range []net.Conn{a.c, rc} {
		tc, ok := c.(*net.TCPConn)
		if !ok {
			continue // a hook's connection: options are its business
		}
		if err := to.tune(tc); err != nil {
			a.c.Close()
			rc.Close()
			return nil, fmt.Errorf("raw-tcp: socket options: %w", err)
		}
	}
	return run(ctx, pipe{
		w: halfCloser{wc},
		r: rc,
		closeAll: func() {
			wc.Close()
			rc.Close()
		},
	}, o)
}

// halfCloser closes only the write side, so the reader sees EOF after
// everything written.
type halfCloser struct{ c *net.TCPConn }

func (h halfCloser) Write(b []byte) (int, error) { return h.c.Write(b) }
func (h halfCloser) Close() error                { return h.c.CloseWrite() }
