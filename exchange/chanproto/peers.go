package chanproto

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// PeerConn is a transport's client connection as Peers manages it.
type PeerConn interface {
	comparable
	// Ready is closed once the connection is up or failed.
	Ready() <-chan struct{}
	// DialErr is why the connection failed (after Ready), or nil.
	DialErr() error
	// Usable reports whether new channels may use the connection.
	Usable() bool
	// CloseIdle closes the connection: its last channel left. It must
	// not block on the network.
	CloseIdle()
}

// Peers is the set of client connections of one transport, shared by
// the channels to each node and reference counted: the first channel to a
// node dials, the last one to leave closes. With K connections per node
// the channels to one node are spread evenly over K connections: each new
// channel takes the one with the fewest channels.
type Peers[C PeerConn] struct {
	k    int
	dial func(addr string) C

	mu     sync.Mutex
	byKey  map[string]C
	refs   map[C]*peerRef
	closed bool
}

type peerRef struct {
	key string
	n   int
}

// NewPeers returns an empty set with k connections per node (k >= 1);
// dial creates a connection to addr and starts connecting it without
// blocking.
func NewPeers[C PeerConn](k int, dial func(addr string) C) *Peers[C] {
	return &Peers[C]{k: max(k, 1), dial: dial, byKey: make(map[string]C), refs: make(map[C]*peerRef)}
}

// stripeKeyLocked names the connection a new channel to addr uses: the
// stripe with the fewest channels, the lowest on a tie. A hash of the
// channel id spread 64 channels over 8 connections as unevenly as 4 to 12,
// and under backpressure a round-robin writer runs at the pace of its
// most crowded connection, so the spread is kept even instead.
func (p *Peers[C]) stripeKeyLocked(addr string) string {
	if p.k <= 1 {
		return addr
	}
	best, bestN := "", -1
	for i := range p.k {
		key := addr + "#" + strconv.Itoa(i)
		n := 0
		if c, ok := p.byKey[key]; ok && c.Usable() {
			n = p.refs[c].n
		}
		if bestN < 0 || n < bestN {
			best, bestN = key, n
		}
	}
	return best
}

// Acquire returns the connection channel id uses to addr, dialing it if
// needed, with a reference taken that Release gives back. It waits for
// the dial (bounded by ctx); a failed dial is its DialErr.
func (p *Peers[C]) Acquire(ctx context.Context, addr string, id wire.ID) (C, error) {
	var zero C
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return zero, exchange.ErrClosed
	}
	key := p.stripeKeyLocked(addr)
	c, ok := p.byKey[key]
	if ok && !c.Usable() {
		delete(p.byKey, key)
		ok = false
	}
	if !ok {
		c = p.dial(addr)
		p.byKey[key] = c
		p.refs[c] = &peerRef{key: key}
	}
	p.refs[c].n++
	p.mu.Unlock()
	select {
	case <-c.Ready():
	case <-ctx.Done():
		p.Release(c)
		return zero, ctx.Err()
	}
	if err := c.DialErr(); err != nil {
		p.Forget(c)
		p.Release(c)
		return zero, err
	}
	return c, nil
}

// Release gives back a reference; the last one closes the connection.
func (p *Peers[C]) Release(c C) {
	p.mu.Lock()
	r := p.refs[c]
	if r == nil {
		p.mu.Unlock()
		return
	}
	r.n--
	last := r.n == 0
	if last {
		delete(p.refs, c)
		if cur, ok := p.byKey[r.key]; ok && cur == c {
			delete(p.byKey, r.key)
		}
	}
	p.mu.Unlock()
	if last {
		c.CloseIdle()
	}
}

// Forget makes new channels dial anew instead of using c (it broke).
func (p *Peers[C]) Forget(c C) {
	p.mu.Lock()
	if r := p.refs[c]; r != nil {
		if cur, ok := p.byKey[r.key]; ok && cur == c {
			delete(p.byKey, r.key)
		}
	}
	p.mu.Unlock()
}

// Lookup returns a connection to addr (the first stripe), if any.
func (p *Peers[C]) Lookup(addr string) (C, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.byKey[addr]
	if !ok {
		c, ok = p.byKey[addr+"#0"]
	}
	return c, ok
}

// Close refuses new channels and returns every connection, for the
// transport to shut down.
func (p *Peers[C]) Close() []C {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	return p.Conns()
}

// Conns returns the connections held, and Refs one's reference count:
// for tests and diagnostics.
func (p *Peers[C]) Conns() []C {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.refs))
}

// Refs returns c's reference count (0 if it is not held).
func (p *Peers[C]) Refs(c C) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.refs[c]; r != nil {
		return r.n
	}
	return 0
}
