package cli

import (
	"flag"
	"math"
	"time"

	"github.com/qexchange/qexchange/bench/lossy"
	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/bench/workload"
)

// lossValue is -loss: "1%" or 0.01.
type lossValue struct {
	s string
	f float64
}

func (v *lossValue) String() string { return v.s }
func (v *lossValue) Set(s string) error {
	f, err := lossy.ParseLoss(s)
	if err != nil {
		return err
	}
	v.s, v.f = s, f
	return nil
}

// linkRateValue is -rate: "100mbit".
type linkRateValue struct{ bits int64 }

func (v *linkRateValue) String() string {
	if v.bits == 0 {
		return ""
	}
	return lossy.FormatRate(v.bits)
}
func (v *linkRateValue) Set(s string) error {
	r, err := lossy.ParseRate(s)
	if err != nil {
		return err
	}
	v.bits = r
	return nil
}

// sweepValue is -sweep: "loss=0,0.5%,1%".
type sweepValue struct {
	s  string
	sw *lossy.Sweep
}

func (v *sweepValue) String() string { return v.s }
func (v *sweepValue) Set(s string) error {
	sw, err := lossy.ParseSweep(s)
	if err != nil {
		return err
	}
	v.s, v.sw = s, sw
	return nil
}

// linkOptions are bench's emulated-link flags. Any of -loss, -burst,
// -rtt, -rate, -queue or -sweep moves the run onto the link.
type linkOptions struct {
	loss    lossValue
	burst   float64
	rtt     time.Duration
	rate    linkRateValue
	queue   int
	seed    int64
	tcpCC   string
	load    float64
	sweep   sweepValue
	plotDir string
	warmup  time.Duration

	on bool // resolved by validateLink
}

// linkFlags switch the run onto the emulated link.
var linkFlags = []string{"loss", "burst", "rtt", "rate", "queue", "sweep"}

func (l *linkOptions) register(fs *flag.FlagSet) {
	fs.Var(&l.loss, "loss", "emulated link: packet loss per direction, e.g. 1% or 0.01 (any link flag runs producer and consumer in two network namespaces joined by the link emulator; needs root and /dev/net/tun)")
	fs.Float64Var(&l.burst, "burst", 1, "emulated link: mean loss burst length in packets (1 = independent losses; > 1 = Gilbert-Elliott)")
	fs.DurationVar(&l.rtt, "rtt", 0, "emulated link: round-trip time (one-way delay rtt/2 each way), e.g. 20ms")
	fs.Var(&l.rate, "rate", "emulated link: rate per direction, e.g. 100mbit, 1gbit, 500kbit (default unlimited)")
	fs.IntVar(&l.queue, "queue", 0, "emulated link: drop-tail queue in packets (0: one bandwidth-delay product, at least 16)")
	fs.Int64Var(&l.seed, "seed", 1, "emulated link: seed of the loss pattern (every transport sees the same drop decision per packet index)")
	fs.StringVar(&l.tcpCC, "tcp-cc", "", "TCP congestion control for tcp and raw-tcp sockets: reno, cubic or bbr (default reno on the emulated link, the closest to quic-go's NewReno; the kernel default on loopback)")
	fs.Float64Var(&l.load, "load", 0, "offered load as a fraction of the link -rate (e.g. 0.5): producers pace themselves to it so latency can be compared (0: as fast as possible)")
	fs.Var(&l.sweep, "sweep", "run the link benchmark once per value of one link parameter: loss=0,0.5%,1%,2%,5%, rtt=10ms,50ms, rate=10mbit,100mbit, or of the offered load (capacity curve, needs -rate): load=0.05,0.1,0.2,0.35,0.5")
	fs.StringVar(&l.plotDir, "plot", "", "emulated link: write PNG charts (latency CDFs; for a sweep also p99 latency and throughput against the swept parameter) into this directory")
	fs.DurationVar(&l.warmup, "warmup", time.Second, "emulated link: records sent during the first part of each run are verified but not measured (connection setup, slow start)")
}

// validateLink checks the link flags (bench only) and resolves defaults.
func (o *options) validateLink() error {
	l := &o.link
	for _, f := range linkFlags {
		if o.set[f] {
			l.on = true
		}
	}
	switch l.tcpCC {
	case "", "reno", "cubic", "bbr":
	default:
		return usagef("-tcp-cc: unknown congestion control %q (want reno, cubic or bbr)", l.tcpCC)
	}
	if l.load < 0 || l.load > 1 || math.IsNaN(l.load) {
		return usagef("-load must be a fraction of the link rate in (0, 1] (got %v)", l.load)
	}
	if !l.on {
		for _, f := range []string{"load", "seed", "plot", "warmup"} {
			if o.set[f] {
				return usagef("-%s needs the emulated link: add -loss, -rtt, -rate or -sweep", f)
			}
		}
		return nil
	}
	if l.tcpCC == "" {
		l.tcpCC = "reno"
	}
	if l.burst < 1 || math.IsNaN(l.burst) {
		return usagef("-burst must be at least 1 packet (got %v)", l.burst)
	}
	if l.rtt < 0 {
		return usagef("-rtt must be >= 0 (got %v)", l.rtt)
	}
	if l.queue < 0 {
		return usagef("-queue must be >= 0 packets (got %d)", l.queue)
	}
	if sw := l.sweep.sw; sw != nil && o.set[sw.Param] {
		return usagef("-sweep %s and -%s both set %s: give it once", sw.Param, sw.Param, sw.Param)
	}
	loadSweep := l.sweep.sw != nil && l.sweep.sw.Param == lossy.SweepLoad
	if l.load > 0 || loadSweep {
		if l.rate.bits == 0 && (l.sweep.sw == nil || l.sweep.sw.Param != lossy.SweepRate) {
			return usagef("-load is a fraction of the link rate: add -rate (e.g. -rate 100mbit)")
		}
		if o.recordRate > 0 {
			return usagef("-load and -record-rate both pace the producers: give one")
		}
	}
	if l.warmup < 0 || l.warmup >= o.duration {
		return usagef("-warmup must be >= 0 and shorter than -duration (got %v of %v)", l.warmup, o.duration)
	}
	if o.records > 0 {
		return usagef("-records does not combine with the emulated link (runs are timed: use -duration)")
	}
	for _, t := range o.transports.items {
		if t == tMem {
			return usagef("-transport mem has no sockets to put on the emulated link (use tcp, quic, raw-tcp, raw-quic)")
		}
	}
	if o.recordSize < workload.FullSize {
		return usagef("-record-size must be at least %d bytes on the emulated link (every record needs a full send timestamp; got %d)", workload.FullSize, o.recordSize)
	}
	if o.sampleEvery > 1 {
		return usagef("-sample-every must be 1 on the emulated link: stall time needs every record's send time (got %d)", o.sampleEvery)
	}
	o.sampleEvery = 1
	return nil
}

// recordRateFor is the per-writer record rate that offers load x the link
// rate in record stream bytes (record + 4-byte length prefix).
func recordRateFor(load float64, rateBits int64, recordSize, writers int) float64 {
	if load <= 0 || rateBits <= 0 {
		return 0
	}
	return load * float64(rateBits) / 8 / float64(recordSize+4) / float64(writers)
}

// paces reports whether the link run paces its writers (-load, or a
// sweep of it).
func (l *linkOptions) paces() bool {
	return l.on && (l.load > 0 || (l.sweep.sw != nil && l.sweep.sw.Param == lossy.SweepLoad))
}

func (l *linkOptions) params() lossy.Params {
	return lossy.Params{Loss: l.loss.f, Burst: l.burst, RTT: l.rtt, Rate: l.rate.bits, Queue: l.queue, Seed: l.seed}
}

func (l *linkOptions) fillConfig(c *results.Config) {
	if !l.on {
		if l.tcpCC != "" {
			c.TCPCC = l.tcpCC
		}
		return
	}
	c.Loss = l.loss.s
	if c.Loss == "" {
		c.Loss = "0"
	}
	c.Burst = l.burst
	c.RTT = l.rtt.String()
	c.LinkRate = l.rate.String()
	c.Queue = l.queue
	c.Seed = l.seed
	c.TCPCC = l.tcpCC
	c.Load = l.load
	c.Sweep = l.sweep.s
	c.Warmup = l.warmup.String()
}
