//go:build !linux || !amd64 || race

package exchange

import "sync/atomic"

// plainStores is false: the writer marks itself with atomic stores, so
// the handshake needs no help from the closer, and the race detector sees
// it.
const plainStores = false

func (g *writerGate) setActive(v uint32) { atomic.StoreUint32(&g.active, v) }

func fastPathAvailable() bool { return true }

func asymmetricFence() {}
