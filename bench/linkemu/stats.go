package linkemu

import "sync/atomic"

// DirStats counts packets of one direction.
type DirStats struct {
	PacketsIn      uint64 // packets read from the sending TUN
	BytesIn        uint64
	Forwarded      uint64 // packets written to the receiving TUN
	BytesForwarded uint64
	DroppedLoss    uint64 // dropped by the loss model
	DroppedQueue   uint64 // dropped by the drop-tail queue
	WriteErrors    uint64 // failed writes to the receiving TUN
}

// InFlight returns the packets admitted but not yet delivered or dropped
// (in the queue or the delay line).
func (d DirStats) InFlight() uint64 {
	return d.PacketsIn - d.Forwarded - d.DroppedLoss - d.DroppedQueue - d.WriteErrors
}

// Stats holds the counters of both directions.
type Stats struct {
	AtoB, BtoA DirStats
}

type dirCounters struct {
	in, bytesIn, fwd, bytesFwd, lossDrop, queueDrop, writeErr atomic.Uint64
	// idleArrivals counts admitted packets that found the bottleneck idle
	// (the probe uses it to tell whether the rate burst kept it busy).
	idleArrivals atomic.Uint64
}

func (c *dirCounters) snapshot() DirStats {
	// Load the "out" counters before "in" so InFlight never underflows.
	var s DirStats
	s.Forwarded = c.fwd.Load()
	s.BytesForwarded = c.bytesFwd.Load()
	s.DroppedLoss = c.lossDrop.Load()
	s.DroppedQueue = c.queueDrop.Load()
	s.WriteErrors = c.writeErr.Load()
	s.PacketsIn = c.in.Load()
	s.BytesIn = c.bytesIn.Load()
	return s
}
