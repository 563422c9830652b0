package results

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// Barrier is what the barrier scenario measures (bench -barrier): how
// long checkpoint barriers take from the producer to the consumer while
// the consumer is slow, how much data is in flight per channel, and the
// consumer's throughput, all over the run after its warmup.
type Barrier struct {
	Mode string `json:"mode"` // aligned or unaligned
	// Debloat: buffer debloating was on; BufferSize is the size the
	// gates last announced (the mean over gates), the segment size
	// without debloating.
	Debloat    bool    `json:"debloat"`
	BufferSize float64 `json:"buffer_size"`
	// ConsumerRate is the consumer's limit as a fraction of the
	// producers' offered rate (0: not limited).
	ConsumerRate float64 `json:"consumer_rate"`
	// Latency: barrier injection (producer's clock) to its arrival at a
	// consumer channel, over Arrived arrivals plus Pending
	// barriers that had not arrived when the run ended, counted with
	// their age then (a lower bound of their latency); milliseconds.
	Latency LatencyMS `json:"latency_ms"`
	Arrived int       `json:"arrived"`
	Pending int       `json:"pending"`
	// InFlight: records written by a producer and not yet taken by the
	// consumer, per channel, in bytes (record plus its 4-byte length):
	// everything between the writer and the reader (the producer's
	// queue, the transport, the consumer's received buffers), sampled
	// every 50 ms; mean and max over channels and samples.
	InFlightMeanBytes float64 `json:"in_flight_mean_bytes"`
	InFlightMaxBytes  float64 `json:"in_flight_max_bytes"`
	// Throughput: records the consumers took per second after warmup.
	RecordsPerSec float64 `json:"records_per_sec"`
	MBytesPerSec  float64 `json:"mbytes_per_sec"`
}

// LatencyMS is a latency summary in milliseconds.
type LatencyMS struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// LatencyMSOf summarises latencies (any order; sorted in place), in ms.
func LatencyMSOf(ms []float64) LatencyMS {
	if len(ms) == 0 {
		return LatencyMS{}
	}
	sort.Float64s(ms)
	q := func(p float64) float64 { return ms[min(len(ms)-1, int(p*float64(len(ms))))] }
	return LatencyMS{P50: q(0.50), P99: q(0.99), Max: ms[len(ms)-1]}
}

// WriteBarrierTable prints the barrier scenario's figures of every
// result that has them, labelled by label(i) (e.g. the round).
func WriteBarrierTable(w io.Writer, rs []Result, label func(i int) string) error {
	fmt.Fprintln(w, "barrier latency (injection to arrival at the consumer; pending barriers counted with their age at the end), in-flight bytes per channel (written, not yet taken), consumer throughput after warmup:")
	tw := tabwriter.NewWriter(w, 4, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\ttransport\tbarrier\tdebloat\tbuffer B\tp50 ms\tp99 ms\tmax ms\tarrived\tpending\tin-flight/ch mean B\tmax B\trec/s\tMB/s\t")
	for i, r := range rs {
		b := r.Barrier
		if b == nil {
			continue
		}
		deb := "off"
		if b.Debloat {
			deb = "on"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.3f\t\n",
			label(i), r.Transport, b.Mode, deb, b.BufferSize, b.Latency.P50, b.Latency.P99, b.Latency.Max,
			b.Arrived, b.Pending, b.InFlightMeanBytes, b.InFlightMaxBytes, b.RecordsPerSec, b.MBytesPerSec)
	}
	return tw.Flush()
}
