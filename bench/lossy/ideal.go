package lossy

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/bench/hist"
	"github.com/qexchange/qexchange/bench/ideal"
	"github.com/qexchange/qexchange/bench/results"
)

// Ideal is the transport name of the ideal-transport limit in results.
const Ideal = "ideal"

// Workload is the offered load of a link-mode run, for the ideal limit.
type Workload struct {
	Channels         int
	RecordSize       int
	RecordsPerSecond float64 // all writers together
	BufferTimeout    time.Duration
	SegmentSize      int
	Duration         time.Duration // measured part of the run
}

// IdealResult is the "ideal" results entry: the latency an ideal transport
// (no head-of-line blocking, no congestion control: one-way delay +
// serialisation + flush wait + one RTT per retransmission round, only for
// buffers whose own packets were lost; bench/ideal) reaches on link p under
// workload w, with percentiles and CDF. Its throughput is the offered
// load. It has no verification counts.
func IdealResult(p Params, w Workload) results.Result {
	h := hist.New()
	dir := p.Config(zerolog.Nop()).AtoB
	ideal.Latencies(ideal.Params{
		Link: dir, RTT: p.RTT, Seed: p.Seed,
		Channels: w.Channels, RecordSize: w.RecordSize, RecordsPerSecond: w.RecordsPerSecond,
		BufferTimeout: w.BufferTimeout, SegmentSize: w.SegmentSize,
		Duration: w.Duration,
	}, func(d time.Duration) { h.Record(int64(d)) })
	r := results.Result{Transport: Ideal, LatencyUS: results.LatencyOf(h), LatencyCDF: CDF(h)}
	secs := w.Duration.Seconds()
	if secs > 0 {
		r.Records = int64(h.Count())
		r.Bytes = r.Records * int64(w.RecordSize)
		r.StreamBytes = r.Bytes + 4*r.Records
		r.Seconds = secs
		r.Finish()
		per := float64(w.RecordSize) * 8 * w.RecordsPerSecond / float64(max(w.Channels, 1)) / 1e6
		r.Channels = &results.Channels{Count: w.Channels, MinMbps: per, MedianMbps: per}
	}
	return r
}
