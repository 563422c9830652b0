package exchange

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are exported under Flink's names where Flink has one
// (outPoolUsage, inPoolUsage, backPressuredTimeMsPerSecond, numBytesIn,
// numBytesOut, outputQueueLength), in Prometheus' snake case with the
// prefix qexchange_. Labels are bounded by what is alive: one series per
// live partition ("partition", its id) and per open gate ("gate", its
// number in the environment), never per channel or per record; released
// partitions and closed gates disappear from the next scrape.
//
// The collector reads counters the data path keeps per buffer (never per
// record) and only when Config.Metrics is set, so metrics off cost
// nothing and metrics on add no allocation per record.

const metricsNamespace = "qexchange"

// envMetrics is the Environment's prometheus.Collector.
type envMetrics struct {
	env *Environment
	reg prometheus.Registerer

	networkUsage, networkSegments                 *prometheus.Desc
	outPoolUsage, outQueue, bpSeconds, bpMsPerSec *prometheus.Desc
	bytesOut, buffersOut                          *prometheus.Desc
	inPoolUsage, bytesIn, buffersIn, gateChannels *prometheus.Desc
	inQueue, credit, requests, retries, failures  *prometheus.Desc
	debloatSize, debloatEstimate                  *prometheus.Desc

	// backPressuredTimeMsPerSecond is a rate over the time since the
	// previous sample of each partition, resampled once a second at most
	// (Flink's TimerGauge reports the last second in the same way).
	mu      sync.Mutex
	samples map[*ResultPartition]bpSample
}

type bpSample struct {
	at     time.Time
	waited time.Duration
}

func newEnvMetrics(e *Environment, reg prometheus.Registerer) (*envMetrics, error) {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, labels, nil)
	}
	m := &envMetrics{
		env:             e,
		reg:             reg,
		networkUsage:    d("network_pool_usage", "Fraction of the node's network buffers in use."),
		networkSegments: d("network_pool_segments", "Network buffers of the node.", "state"),
		outPoolUsage:    d("out_pool_usage", "Fraction of the partition's maximum buffers in use (Flink's outPoolUsage).", "partition"),
		outQueue:        d("output_queue_length", "Finished buffers queued in the partition's subpartitions (Flink's outputQueueLength).", "partition"),
		bpSeconds:       d("back_pressured_seconds_total", "Time the partition's writer waited for a free buffer.", "partition"),
		bpMsPerSec:      d("back_pressured_time_ms_per_second", "Milliseconds per second the partition's writer waited for a free buffer, over the last second or so (Flink's backPressuredTimeMsPerSecond).", "partition"),
		bytesOut:        d("num_bytes_out_total", "Data bytes handed to the partition's readers (Flink's numBytesOut).", "partition"),
		buffersOut:      d("num_buffers_out_total", "Data buffers handed to the partition's readers (Flink's numBuffersOut).", "partition"),
		inPoolUsage:     d("in_pool_usage", "Fraction of the gate's exclusive or floating buffers in use (Flink's inPoolUsage).", "gate", "pool"),
		bytesIn:         d("num_bytes_in_total", "Data bytes the gate took from its channels (Flink's numBytesIn), local or remote.", "gate", "locality"),
		buffersIn:       d("num_buffers_in_total", "Data buffers the gate took from its channels (Flink's numBuffersIn), local or remote.", "gate", "locality"),
		gateChannels:    d("gate_channels", "Input channels of the gate.", "gate"),
		inQueue:         d("input_queue_length", "Buffers received by the gate's remote channels and not yet read (Flink's inputQueueLength).", "gate"),
		credit:          d("credit_available", "Credit the gate's remote channels announced and their producers have not used yet.", "gate"),
		requests:        d("partition_requests_total", "Partition requests the gate's remote channels sent, retries included.", "gate"),
		retries:         d("partition_request_retries_total", "Partition requests retried after PartitionNotFound or a refused connection.", "gate"),
		failures:        d("channel_failures_total", "Input channels that failed, by class of error.", "gate", "class"),
		debloatSize:     d("debloated_buffer_size", "Buffer size the gate last announced to its producers (Flink's debloatedBufferSize); only with debloating.", "gate"),
		debloatEstimate: d("estimated_time_to_consume_buffers_ms", "Time the gate's buffers in use take to consume at its measured throughput (Flink's estimatedTimeToConsumeBuffersMs); only with debloating.", "gate"),
		samples:         make(map[*ResultPartition]bpSample),
	}
	if err := reg.Register(m); err != nil {
		return nil, configError("Metrics", "Registerer", "cannot register the exchange's collector: "+err.Error())
	}
	return m, nil
}

func (m *envMetrics) unregister() { m.reg.Unregister(m) }

// Describe implements prometheus.Collector.
func (m *envMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		m.networkUsage, m.networkSegments, m.outPoolUsage, m.outQueue, m.bpSeconds, m.bpMsPerSec,
		m.bytesOut, m.buffersOut, m.inPoolUsage, m.bytesIn, m.buffersIn, m.gateChannels,
		m.inQueue, m.credit, m.requests, m.retries, m.failures, m.debloatSize, m.debloatEstimate,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *envMetrics) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	pool := m.env.pool
	used, total := pool.Outstanding(), pool.TotalSegments()
	gauge(m.networkUsage, ratio(used, total))
	gauge(m.networkSegments, float64(used), "used")
	gauge(m.networkSegments, float64(total), "total")

	now := time.Now()
	parts, gates := m.env.live()
	m.mu.Lock()
	alive := make(map[*ResultPartition]bool, len(parts))
	for _, p := range parts {
		alive[p] = true
		id := p.id.String()
		gauge(m.outPoolUsage, ratio(p.pool.Outstanding(), p.pool.Max()), id)
		queued := 0
		for i := range p.subs {
			queued += p.subs[i].backlogNow()
		}
		gauge(m.outQueue, float64(queued), id)
		waited := p.pool.BackpressuredTime()
		counter(m.bpSeconds, waited.Seconds(), id)
		prev, ok := m.samples[p]
		if !ok {
			prev = bpSample{at: p.created}
		}
		rate := 0.0
		if span := now.Sub(prev.at); span > 0 {
			rate = float64((waited - prev.waited).Milliseconds()) / span.Seconds()
		}
		gauge(m.bpMsPerSec, min(max(rate, 0), 1000), id)
		if !ok || now.Sub(prev.at) >= time.Second {
			m.samples[p] = bpSample{at: now, waited: waited}
		}
		counter(m.bytesOut, float64(p.bytesOut.Load()), id)
		counter(m.buffersOut, float64(p.buffersOut.Load()), id)
	}
	for p := range m.samples {
		if !alive[p] {
			delete(m.samples, p)
		}
	}
	m.mu.Unlock()

	for _, g := range gates {
		id := strconv.FormatInt(g.seq, 10)
		if g.exclusive != nil {
			gauge(m.inPoolUsage, ratio(g.exclusive.Outstanding(), g.exclusive.Max()), id, "exclusive")
		}
		if g.floating != nil {
			gauge(m.inPoolUsage, ratio(g.floating.Outstanding(), g.floating.Max()), id, "floating")
		}
		for loc, name := range [2]string{"local", "remote"} {
			counter(m.bytesIn, float64(g.in[loc].bytes.Load()), id, name)
			counter(m.buffersIn, float64(g.in[loc].buffers.Load()), id, name)
		}
		gauge(m.gateChannels, float64(len(g.channels)), id)
		queued, credit := remoteChannelState(g)
		gauge(m.inQueue, float64(queued), id)
		gauge(m.credit, float64(credit), id)
		counter(m.requests, float64(g.requests.Load()), id)
		counter(m.retries, float64(g.retries.Load()), id)
		for i, c := range failureClasses {
			counter(m.failures, float64(g.failed[i].Load()), id, c.name)
		}
		if d := g.debloat; d != nil {
			gauge(m.debloatSize, float64(d.size.Load()), id)
			gauge(m.debloatEstimate, float64(d.estimateMs.Load()), id)
		}
	}
}

func ratio(n, of int) float64 {
	if of <= 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// failureClasses label channel failures in metrics, by the sentinel the
// error wraps; the last is everything else.
var failureClasses = [...]struct {
	name string
	err  error
}{
	{"partition_not_found", ErrPartitionNotFound},
	{"connection_lost", ErrConnectionLost},
	{"protocol", ErrProtocol},
	{"remote", ErrRemote},
	{"already_consumed", ErrAlreadyConsumed},
	{"closed", ErrClosed},
	{"other", nil},
}

func failureClass(err error) int {
	for i, c := range failureClasses {
		if c.err == nil || errors.Is(err, c.err) {
			return i
		}
	}
	return len(failureClasses) - 1
}

// count adds one to a gate counter when metrics are on.
func (g *InputGate) count(c *atomic.Int64) {
	if g.metered {
		c.Add(1)
	}
}

// remoteChannelState sums, over a gate's remote channels, the buffers
// received and not yet taken by Next, and the credit announced to the
// producers and not yet used.
func remoteChannelState(g *InputGate) (queued, credit int) {
	for _, ch := range g.channels {
		if c, ok := ch.(*remoteChannel); ok {
			c.mu.Lock()
			queued += c.received.len()
			credit += c.rc.Available()
			c.mu.Unlock()
		}
	}
	return queued, credit
}
