package faultproxy

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Direction is the way a datagram travels through a UDP proxy.
type Direction uint8

const (
	// ToTarget: from a client to the target.
	ToTarget Direction = iota
	// ToClient: from the target back to a client.
	ToClient
)

func (d Direction) String() string {
	if d == ToTarget {
		return "to-target"
	}
	return "to-client"
}

// Datagram describes one datagram a drop rule decides on.
type Datagram struct {
	Dir Direction
	// Seq counts the proxy's datagrams in this direction from 0, over all
	// clients.
	Seq uint64
	// Len is the datagram's size in bytes.
	Len int
}

// DropRule reports whether to drop a datagram. It is called from the
// proxy's relaying goroutines concurrently and must not block.
type DropRule func(Datagram) bool

// RandomLoss drops each datagram, in both directions, with probability
// rate. The choice is a hash of (seed, direction, sequence number), so a
// run's pattern of losses is reproducible from its seed and needs no lock.
func RandomLoss(rate float64, seed uint64) DropRule {
	threshold := uint64(rate * (1 << 53))
	return func(d Datagram) bool {
		return mix(seed^uint64(d.Dir)<<63^d.Seq)>>11 < threshold
	}
}

// mix is the SplitMix64 finaliser: consecutive inputs give independent,
// uniformly distributed outputs.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// UDP relays datagrams between clients and one target on loopback,
// dropping those its rule selects. It is safe for concurrent use.
type UDP struct {
	front  *net.UDPConn
	target *net.UDPAddr

	rule      atomic.Pointer[DropRule]
	blackhole atomic.Bool
	seq       [2]atomic.Uint64
	relayed   atomic.Int64
	dropped   atomic.Int64

	mu     sync.Mutex
	flows  map[string]*net.UDPConn // client address -> upstream socket
	closed bool
	wg     sync.WaitGroup
}

// NewUDP listens on 127.0.0.1 and relays datagrams to target, dropping
// those for which drop returns true (nil drops nothing).
func NewUDP(target string, drop DropRule) (*UDP, error) {
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	// Bursts of a fast sender must not be lost in the proxy's own socket:
	// the only losses are the ones the rule chooses.
	_ = front.SetReadBuffer(8 << 20)
	_ = front.SetWriteBuffer(8 << 20)
	p := &UDP{front: front, target: ta, flows: make(map[string]*net.UDPConn)}
	p.SetDrop(drop)
	p.wg.Add(1)
	go p.fromClients()
	return p, nil
}

// Addr is the address to send to instead of the target.
func (p *UDP) Addr() string { return p.front.LocalAddr().String() }

// SetDrop replaces the drop rule (nil drops nothing).
func (p *UDP) SetDrop(drop DropRule) {
	if drop == nil {
		drop = func(Datagram) bool { return false }
	}
	p.rule.Store(&drop)
}

// Blackhole drops every datagram, both ways, while on is true.
func (p *UDP) Blackhole(on bool) { p.blackhole.Store(on) }

// Cut blackholes the proxy for good: to both peers the path goes silent,
// as a failed link would, and they can only notice by timing out.
func (p *UDP) Cut() { p.Blackhole(true) }

// Stats returns the datagrams relayed and dropped so far.
func (p *UDP) Stats() (relayed, dropped int64) { return p.relayed.Load(), p.dropped.Load() }

// Close stops relaying, closes every socket and waits for the goroutines.
func (p *UDP) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.front.Close()
	for _, up := range p.flows {
		_ = up.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// drop applies the blackhole and the rule, and counts.
func (p *UDP) drop(dir Direction, n int) bool {
	d := Datagram{Dir: dir, Seq: p.seq[dir].Add(1) - 1, Len: n}
	if p.blackhole.Load() || (*p.rule.Load())(d) {
		p.dropped.Add(1)
		return true
	}
	p.relayed.Add(1)
	return false
}

func (p *UDP) fromClients() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, client, err := p.front.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		up := p.flow(client)
		if up == nil || p.drop(ToTarget, n) {
			continue
		}
		_, _ = up.Write(buf[:n])
	}
}

// flow returns the upstream socket of client, creating it (and its
// relaying goroutine) on the client's first datagram.
func (p *UDP) flow(client *net.UDPAddr) *net.UDPConn {
	key := client.String()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if up := p.flows[key]; up != nil {
		return up
	}
	up, err := net.DialUDP("udp", nil, p.target)
	if err != nil {
		return nil
	}
	_ = up.SetReadBuffer(8 << 20)
	_ = up.SetWriteBuffer(8 << 20)
	p.flows[key] = up
	p.wg.Add(1)
	go p.toClient(up, client)
	return up
}

func (p *UDP) toClient(up *net.UDPConn, client *net.UDPAddr) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			// Closed, or an ICMP error from a target that went away: the
			// client will notice the silence.
			if p.isClosed() {
				return
			}
			continue
		}
		if p.drop(ToClient, n) {
			continue
		}
		_, _ = p.front.WriteToUDP(buf[:n], client)
	}
}

func (p *UDP) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
