package exchange

import (
	"runtime"
	"sync/atomic"
)

// writerGate lets a partition's one writer goroutine append a record
// without a lock and without an atomic read-modify-write, while other
// goroutines (the flusher, Flush, events, Finish, Release) can still keep
// it out for a moment (docs/architecture.md, "The writer's fast path").
//
// It is a Dekker handshake. The writer marks itself active, then checks
// that no one has closed the gate; a closer (always holding the
// partition's wmu) closes the gate, then waits until the writer is not
// active. Either the closer sees the writer active and waits for it, or
// the writer sees the gate closed and takes the locked path. Each side
// stores and then loads, which needs a store-load fence on both sides.
//
// On amd64 a Go atomic store is an XCHG: a locked instruction that costs
// as much as the mutex it replaces. There (linux/amd64, writergate_plain.go)
// the writer uses plain stores, and each close supplies the writer's half
// of the fence with membarrier(2), which runs a full barrier on every CPU
// that runs a thread of the process. A close costs about 2 µs, and comes
// once per flush or event, never per record. Where membarrier is refused, the gate
// stays shut and every record takes the locked path. Elsewhere, and under
// the race detector (which must see the handshake), the writer stores
// atomically (writergate_atomic.go): still no read-modify-write, and cheap
// on arm64.
type writerGate struct {
	_ [cacheLine]byte // the writer's line to itself
	// active is 1 while the writer is inside the fast path. Only the
	// writer stores it.
	active uint32
	// closed counts closers holding the gate closed, plus gateShut once
	// the fast path has ended for good.
	closed atomic.Int32
	_      [cacheLine]byte
}

const (
	cacheLine = 64
	// gateShut keeps the gate closed for good: the partition is failed,
	// finished or released, or flushes every record, and every write goes
	// through the locked path, which says why.
	gateShut = 1 << 30
)

// enter is the writer's way in: true means the fast path is open and the
// writer must call leave when done; false means take the locked path.
func (g *writerGate) enter() bool {
	g.setActive(1)
	if g.closed.Load() == 0 {
		return true
	}
	g.setActive(0)
	return false
}

// leave ends the writer's fast path. With plain stores it is a release
// (amd64 keeps stores in order): everything the writer stored before it
// is visible to a closer that sees active == 0.
func (g *writerGate) leave() { g.setActive(0) }

// close keeps the writer out of the fast path until reopen, and returns
// once it has left it. The caller holds wmu, which keeps the writer's
// locked path out.
func (g *writerGate) close() {
	g.closed.Add(1)
	if plainStores {
		asymmetricFence()
	}
	// The fast path is a bounded copy of one record: this waits at most
	// for that, or for the writer's goroutine to be scheduled again.
	for atomic.LoadUint32(&g.active) != 0 {
		runtime.Gosched()
	}
}

// reopen undoes close.
func (g *writerGate) reopen() { g.closed.Add(-1) }

// shut closes the gate for good. It does not wait: a record being
// appended as the partition fails or is released may still land, as it
// could when the writer held a lock.
func (g *writerGate) shut() { g.closed.Or(gateShut) }
