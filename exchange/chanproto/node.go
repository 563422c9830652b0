package chanproto

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/qexchange/qexchange/exchange"
)

// Node is the lifecycle every transport keeps the same way: the address
// it listens on, its listener and the provider it serves, the
// connections it serves (of type C), whether it is closed, and the
// goroutines its Close waits for. Adding a connection or a goroutine and
// closing exclude each other, so that Close sees every served connection
// and waits for every goroutine started before it.
type Node[C comparable] struct {
	pkg      string // the transport, for error messages
	mu       sync.Mutex
	addr     string
	listener io.Closer
	provider exchange.ViewProvider
	served   map[C]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// NewNode returns the lifecycle of a node of the transport pkg
// ("tcptransport", ...).
func NewNode[C comparable](pkg string) *Node[C] {
	return &Node[C]{pkg: pkg, served: make(map[C]struct{})}
}

// Addr is the address the node listens on ("" before Listening).
func (n *Node[C]) Addr() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Provider is the ViewProvider the node serves (nil before Listening).
func (n *Node[C]) Provider() exchange.ViewProvider {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.provider
}

// IsClosed reports whether Close was called.
func (n *Node[C]) IsClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// CanListen is exchange.ErrClosed once the node is closed, and an error
// once it listens: the checks before a transport opens its listener.
func (n *Node[C]) CanListen() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.canListen()
}

func (n *Node[C]) canListen() error {
	switch {
	case n.closed:
		return exchange.ErrClosed
	case n.addr != "":
		return fmt.Errorf("%s: already listening on %s", n.pkg, n.addr)
	}
	return nil
}

// Listening records that the node listens on addr with ln (nil: nothing
// to close) for provider. If it closed or started listening meanwhile,
// ln is closed and the error is CanListen's.
func (n *Node[C]) Listening(ln io.Closer, addr string, provider exchange.ViewProvider) error {
	n.mu.Lock()
	err := n.canListen()
	if err == nil {
		n.listener, n.addr, n.provider = ln, addr, provider
	}
	n.mu.Unlock()
	if err != nil && ln != nil {
		ln.Close()
	}
	return err
}

// Go runs f on a goroutine that Wait waits for, even once the node is
// closed: for goroutines that an earlier tracked one, or a peer dial
// that Close stops, starts.
func (n *Node[C]) Go(f func()) {
	n.wg.Add(1)
	// A goroutine of this package's own, not sync.WaitGroup.Go's: until it
	// first runs, a goroutine's stack shows only its entry function, and
	// goroutine leak checks (transporttest.CheckGoroutines) recognise the
	// transport's goroutines by this module's frames.
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// GoUnlessClosed runs f as Go does, unless the node is closed (false).
func (n *Node[C]) GoUnlessClosed(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.Go(f)
	return true
}

// Track adds c to the served connections, unless the node is closed
// (false); Untrack removes it.
func (n *Node[C]) Track(c C) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.served[c] = struct{}{}
	return true
}

// Untrack removes c from the served connections.
func (n *Node[C]) Untrack(c C) {
	n.mu.Lock()
	delete(n.served, c)
	n.mu.Unlock()
}

// Serve tracks c and runs serve on a goroutine Wait waits for; c is
// untracked when serve returns. False, without running serve, once the
// node is closed.
func (n *Node[C]) Serve(c C, serve func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.served[c] = struct{}{}
	n.Go(func() {
		defer n.Untrack(c)
		serve()
	})
	return true
}

// Served is a snapshot of the served connections.
func (n *Node[C]) Served() []C {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Collect(maps.Keys(n.served))
}

// Close marks the node closed and closes its listener. It returns the
// connections being served, for the transport to close, and false if the
// node was closed already.
func (n *Node[C]) Close() ([]C, bool) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, false
	}
	n.closed = true
	ln := n.listener
	n.mu.Unlock()
	// Nothing is tracked once closed: the snapshot is complete.
	served := n.Served()
	if ln != nil {
		ln.Close()
	}
	return served, true
}

// Wait waits for the goroutines started by Go, GoUnlessClosed and Serve.
func (n *Node[C]) Wait() { n.wg.Wait() }
