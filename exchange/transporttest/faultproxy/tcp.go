package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by a proxy's methods after Close.
var ErrClosed = errors.New("faultproxy: closed")

// ConnInfo describes one connection relayed by a TCP proxy.
type ConnInfo struct {
	// Index counts the proxy's accepted connections from 0.
	Index int
	// Client is the address of the connecting side.
	Client string
}

// TCP relays loopback TCP connections to one target and cuts them on
// demand. It is safe for concurrent use.
type TCP struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[*tcpPair]struct{}
	next   int
	closed bool

	relayed atomic.Int64
	wg      sync.WaitGroup
}

type tcpPair struct {
	info           ConnInfo
	client, target net.Conn
	once           sync.Once
}

// cut closes both sides; a zero linger makes the close a reset, so the
// peers see an abrupt failure rather than an orderly end of stream.
func (c *tcpPair) cut() {
	c.once.Do(func() {
		for _, nc := range []net.Conn{c.client, c.target} {
			if tc, ok := nc.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = nc.Close()
		}
	})
}

// NewTCP listens on 127.0.0.1 and relays every accepted connection to
// target.
func NewTCP(target string) (*TCP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &TCP{ln: ln, target: target, conns: make(map[*tcpPair]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address to dial instead of the target.
func (p *TCP) Addr() string { return p.ln.Addr().String() }

// Relayed is the number of bytes relayed so far (read from one side and
// handed to the other), both directions.
func (p *TCP) Relayed() int64 { return p.relayed.Load() }

// Conns is the number of live relayed connections.
func (p *TCP) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Cut resets every live connection. New connections are still accepted.
func (p *TCP) Cut() { p.CutIf(func(ConnInfo) bool { return true }) }

// CutIf resets the live connections for which which returns true and
// returns how many it cut.
func (p *TCP) CutIf(which func(ConnInfo) bool) int {
	p.mu.Lock()
	var cut []*tcpPair
	for c := range p.conns {
		if which(c.info) {
			cut = append(cut, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cut {
		c.cut()
	}
	return len(cut)
}

// Close stops accepting, resets every connection and waits for the
// relaying goroutines.
func (p *TCP) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *TCP) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		target, err := net.Dial("tcp", p.target)
		if err != nil {
			// The client sees what it would have seen at the target: a
			// refused (here: reset) connection.
			if tc, ok := client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = client.Close()
			_ = target.Close()
			return
		}
		c := &tcpPair{info: ConnInfo{Index: p.next, Client: client.RemoteAddr().String()}, client: client, target: target}
		p.next++
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, client, target)
		go p.pipe(c, target, client)
	}
}

// pipe copies one direction. When either direction ends, the whole
// connection is torn down: a half-closed relay would hide failures.
func (p *TCP) pipe(c *tcpPair, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			// Counted before the write, so that a peer which has read
			// the bytes always sees them in Relayed.
			p.relayed.Add(int64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	c.cut()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
