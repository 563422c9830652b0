package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/bench/linkemu"
	"github.com/qexchange/qexchange/bench/lossy"
	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/exchange"
)

// paceQuantum: on the link, writers emit up to 1 ms of records ahead of
// time instead of sleeping per record (workload.ProducerConfig).
const paceQuantum = time.Millisecond

// quiesceLimit bounds the wait for an idle link between runs.
const quiesceLimit = 5 * time.Second

// runLinkBench runs the benchmark over the emulated link: for each sweep
// point (or the one setting) it opens a link, probes it and refuses to run
// when the probe is out of tolerance (exit 2), then runs every transport
// with the loss pattern reset to the seed, and adds the ideal limit.
func runLinkBench(ctx context.Context, o *options, stdout, stderr io.Writer, log zerolog.Logger) int {
	if msg := lossy.Unavailable(); msg != "" {
		fmt.Fprintf(stderr, "exchange bench: %s\n", msg)
		return ExitUsage
	}
	tlsM, err := o.benchTLS()
	if err != nil {
		fmt.Fprintf(stderr, "exchange bench: %v\n", err)
		return ExitFailed
	}
	cfg := o.resultsConfig()
	base := o.link.params()
	sw := o.link.sweep.sw
	n := 1
	if sw != nil {
		n = len(sw.Values)
	}
	doc := &results.Sweep{SchemaVersion: results.SchemaVersion, Config: cfg}
	seeds := o.rep.seeds.seeds
	clean := true
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		p, load, label := base, o.link.load, ""
		if sw != nil {
			p = sw.Apply(base, i)
			if l, ok := sw.LoadAt(i); ok {
				load = l
			}
			label = "[" + sw.Param + "=" + sw.Values[i] + "] "
		}
		var runs []results.SeedRun
		for _, seed := range seeds {
			if ctx.Err() != nil {
				break
			}
			ps, slabel := p, label
			ps.Seed = seed
			if len(seeds) > 1 {
				slabel += fmt.Sprintf("[seed=%d] ", seed)
			}
			pt, code := runLinkPoint(ctx, o, ps, load, slabel, tlsM, stdout, stderr, log)
			if code != ExitOK {
				return code
			}
			rep := &results.Report{Config: cfg, Link: pt.Link, Results: pt.Results}
			lossy.WriteTable(stdout, rep)
			writeBarrierResults(stdout, pt.Results, slabel)
			fmt.Fprintln(stdout)
			if !rep.Clean() {
				clean = false
			}
			runs = append(runs, results.SeedRun{Seed: seed, Link: pt.Link, Results: pt.Results})
		}
		if len(runs) == 0 {
			break
		}
		pt := seedPoint(runs)
		if pt.Summary != nil {
			lossy.WriteSeedSummary(stdout, label, &pt)
			fmt.Fprintln(stdout)
		}
		if sw != nil {
			pt.Param, pt.Value, pt.X = sw.Param, sw.Values[i], sw.X[i]
		}
		doc.Sweep = append(doc.Sweep, pt)
	}
	if sw != nil {
		lossy.WriteSweepSummary(stdout, doc)
	}
	if o.jsonPath != "" {
		var err error
		if sw != nil {
			err = writeJSON(o.jsonPath, doc)
		} else if len(doc.Sweep) == 1 {
			err = pointReport(cfg, &doc.Sweep[0]).WriteJSONFile(o.jsonPath)
		}
		if err != nil {
			fmt.Fprintf(stderr, "exchange bench: writing -json %s: %v\n", o.jsonPath, err)
			return ExitFailed
		}
	}
	if o.link.plotDir != "" && len(doc.Sweep) > 0 {
		var files []string
		var err error
		if sw != nil {
			files, err = lossy.WriteSweepCharts(o.link.plotDir, doc, sw)
		} else {
			files, err = lossy.WriteRunCharts(o.link.plotDir, pointReport(cfg, &doc.Sweep[0]))
		}
		if err != nil {
			fmt.Fprintf(stderr, "exchange bench: -plot: %v\n", err)
			return ExitFailed
		}
		for _, f := range files {
			fmt.Fprintf(stdout, "chart: %s\n", f)
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "exchange bench: interrupted")
		return ExitFailed
	}
	if !clean {
		fmt.Fprintln(stderr, "exchange bench: verification FAILED (see lost/dup/reord/bad and errors above)")
		return ExitFailed
	}
	return ExitOK
}

// seedPoint folds one setting's seeds into a sweep point: with one seed
// its link and results; with several the first seed's link, the
// Aggregate of the results, every seed and the summary.
func seedPoint(runs []results.SeedRun) results.SweepPoint {
	if len(runs) == 1 {
		return results.SweepPoint{Link: runs[0].Link, Results: runs[0].Results}
	}
	all := make([][]results.Result, len(runs))
	for i := range runs {
		all[i] = runs[i].Results
	}
	return results.SweepPoint{
		Link:    runs[0].Link,
		Results: results.Aggregate(all, func(i int) string { return fmt.Sprintf("seed %d", runs[i].Seed) }),
		Seeds:   runs,
		Summary: results.SummariseSeeds(runs),
	}
}

// pointReport is the JSON document of a run without a sweep.
func pointReport(cfg results.Config, pt *results.SweepPoint) *results.Report {
	return &results.Report{Config: cfg, Link: pt.Link, Results: pt.Results, Seeds: pt.Seeds, Summary: pt.Summary}
}

// runLinkPoint runs every transport over one link setting at offered
// load (a fraction of the link rate; 0: -record-rate or unpaced).
func runLinkPoint(ctx context.Context, o *options, p lossy.Params, load float64, label string, tlsM *tlsMaterial, stdout, stderr io.Writer, log zerolog.Logger) (*results.SweepPoint, int) {
	link, err := lossy.Open(ctx, p, log)
	if err != nil {
		fmt.Fprintf(stderr, "exchange bench: %screating the emulated link: %v\n", label, err)
		return nil, ExitFailed
	}
	defer link.Close()
	probe, err := link.Probe(ctx)
	fmt.Fprintln(stdout, label+lossy.ProbeLine(probe))
	if err != nil {
		fmt.Fprintf(stderr, "exchange bench: %srefusing to run: the emulated link is not what was configured (%v); the host is probably too busy to forward packets in time: retry on an idle machine\n", label, err)
		return nil, ExitUsage
	}
	recRate := recordRateFor(load, p.Rate, o.recordSize, o.writers)
	if load == 0 {
		recRate = o.recordRate
	}
	bt := o.bufferTimeout.d
	grace := p.OneWay() + time.Millisecond
	if bt > 0 {
		grace += bt
	}
	info := &results.Link{
		Loss: p.Loss, BurstLen: p.Burst, RTT: p.RTT.String(), RateBits: p.Rate,
		Queue: link.Config().AtoB.QueuePackets, Seed: p.Seed, TCPCC: o.link.tcpCC, Load: load,
		OneWayUS: float64(p.OneWay()) / 1e3, GraceUS: float64(grace) / 1e3, WarmupS: o.link.warmup.Seconds(),
		RecordRate: recRate, Probe: probe,
	}
	if info.Queue == 0 {
		info.Queue = queueLimit(p)
	}
	prod, cons := link.Sockets(linkemu.A), link.Sockets(linkemu.B)
	hooks := Hooks{
		Dial: prod.Dial, Listen: prod.Listen, ListenPacket: prod.ListenPacket,
		ProducerListen: prod.Addr, TCPCongestion: o.link.tcpCC,
		Client: &Hooks{Dial: cons.Dial, Listen: cons.Listen, ListenPacket: cons.ListenPacket, ConsumerListen: cons.Addr},
	}
	ms := &measureSpec{recordRate: recRate, paceQuantum: paceQuantum, warmup: o.link.warmup, grace: grace}
	pt := &results.SweepPoint{Link: info}
	for _, name := range o.transports.items {
		if ctx.Err() != nil {
			break
		}
		// Same loss pattern for every transport: an idle link, then the
		// loss models back at the seed's first decision.
		link.Quiesce(ctx, quiesceLimit)
		link.ResetLoss()
		before := link.Stats()
		var r results.Result
		switch name {
		case tRawTCP, tRawQUIC:
			r = runRaw(ctx, o, name, hooks, tlsM, stderr)
		default:
			r = runExchange(ctx, o, name, hooks, tlsM, stderr, log, ms)
		}
		r.Emulator = lossy.Counters(before, link.Stats())
		pt.Results = append(pt.Results, r)
	}
	if recRate > 0 {
		timeout := bt
		switch bt {
		case exchange.FlushEveryRecord:
			timeout = 0
		case exchange.FlushFullBuffersOnly:
			timeout = o.duration
		}
		pt.Results = append(pt.Results, lossy.IdealResult(p, lossy.Workload{
			Channels: o.writers * o.readers, RecordSize: o.recordSize, RecordsPerSecond: recRate * float64(o.writers),
			BufferTimeout: timeout, SegmentSize: int(o.segmentSize.n), Duration: o.duration - o.link.warmup,
		}))
	}
	return pt, ExitOK
}

// queueLimit mirrors linkemu's default drop-tail limit: one BDP, at
// least 16 packets.
func queueLimit(p lossy.Params) int {
	if p.Queue > 0 {
		return p.Queue
	}
	if p.Rate <= 0 {
		return 16
	}
	bdp := float64(p.Rate) * p.RTT.Seconds() / float64(8*linkemu.DefaultMTU)
	return max(16, int(bdp+0.999999))
}

// writeJSON writes a sweep document.
func writeJSON(path string, doc *results.Sweep) error {
	return results.WriteJSONFileOf(path, doc)
}
