// Package ideal computes the latency an ideal transport would reach on an
// emulated link, so that each real transport in a lossy benchmark is also
// judged against a limit and not only against the other transport.
//
// The ideal transport has no head-of-line blocking and no congestion
// control: each channel's records wait for their buffer to be flushed (as
// in the real run: every BufferTimeout, or at once with FlushEveryRecord),
// the buffer is serialised at the link rate, crosses the one-way delay,
// and only a buffer whose own packets were lost pays one round trip per
// retransmission round. Losses are drawn from the link emulator's own loss
// model with the run's seed, packet by packet in send order, so the ideal
// sees a loss process with the same statistics (not the same packets: the
// real transports send different packets, acknowledgements included).
package ideal

import (
	"math/rand/v2"
	"sort"
	"time"

	"github.com/qexchange/qexchange/bench/linkemu"
)

// Params describe the run being bounded.
type Params struct {
	// Link is the data direction of the emulated link (producer ->
	// consumer); Link.Delay is the one-way delay.
	Link linkemu.Direction
	// RTT is the round trip a retransmission costs.
	RTT  time.Duration
	Seed int64
	// Channels, RecordSize and RecordsPerSecond (all channels together)
	// describe the offered load.
	Channels         int
	RecordSize       int
	RecordsPerSecond float64
	// BufferTimeout is the flush interval; 0 flushes every record.
	BufferTimeout time.Duration
	// SegmentSize caps a buffer; a full buffer is sent at once.
	SegmentSize int
	// PacketPayload is the payload bytes per packet (default 1400).
	PacketPayload int
	// Duration of simulated time (default 10 s).
	Duration time.Duration
}

// Latencies calls add with the ideal latency of every record of the
// simulated run.
func Latencies(p Params, add func(time.Duration)) {
	if p.PacketPayload == 0 {
		p.PacketPayload = 1400
	}
	if p.Duration == 0 {
		p.Duration = 10 * time.Second
	}
	if p.Channels < 1 || p.RecordsPerSecond <= 0 {
		return
	}
	recordBytes := p.RecordSize + 4 // length prefix
	perChannel := p.RecordsPerSecond / float64(p.Channels)
	interval := time.Duration(float64(time.Second) / perChannel)
	rng := rand.New(rand.NewPCG(uint64(p.Seed), 0x1dea1))
	loss := linkemu.NewLossModel(p.Link, p.Seed, 0)

	type flush struct {
		at      time.Duration
		channel int
		emits   []time.Duration
	}
	// Build each channel's flushes, then process all in time order so
	// packets draw from the loss model in send order.
	var flushes []flush
	for c := range p.Channels {
		phase := time.Duration(rng.Int64N(int64(interval)))
		tick := time.Duration(0)
		if p.BufferTimeout > 0 {
			tick = time.Duration(rng.Int64N(int64(p.BufferTimeout)))
		}
		var pending []time.Duration
		bytes := 0
		for t := phase; t < p.Duration; t += interval {
			if p.BufferTimeout > 0 {
				for tick < t && len(pending) > 0 {
					flushes = append(flushes, flush{tick, c, pending})
					pending, bytes = nil, 0
					tick += p.BufferTimeout
				}
				for tick < t {
					tick += p.BufferTimeout
				}
			}
			pending = append(pending, t)
			bytes += recordBytes
			if p.BufferTimeout == 0 || (p.SegmentSize > 0 && bytes >= p.SegmentSize) {
				flushes = append(flushes, flush{t, c, pending})
				pending, bytes = nil, 0
			}
		}
		if len(pending) > 0 {
			flushes = append(flushes, flush{tick, c, pending})
		}
	}
	sort.Slice(flushes, func(i, j int) bool { return flushes[i].at < flushes[j].at })
	for _, f := range flushes {
		bytes := len(f.emits) * recordBytes
		packets := (bytes + p.PacketPayload - 1) / p.PacketPayload
		var ser time.Duration
		if p.Link.RateBitsPerSec > 0 {
			ser = time.Duration(float64(bytes*8) / float64(p.Link.RateBitsPerSec) * float64(time.Second))
		}
		// One retransmission round per round in which any of the
		// buffer's (remaining) packets was lost.
		var extra time.Duration
		for lost := packets; lost > 0; {
			n := 0
			for range lost {
				if loss.Drop() {
					n++
				}
			}
			if n == 0 {
				break
			}
			extra += p.RTT
			lost = n
		}
		done := f.at + ser + p.Link.Delay + extra
		for _, e := range f.emits {
			add(done - e)
		}
	}
}
