package cli

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/qexchange/qexchange/bench/lossy"
	"github.com/qexchange/qexchange/bench/raw"
	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/bench/workload"
	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
)

// cpuSeconds is this process's user + system CPU time.
func cpuSeconds() float64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// fillFromStats copies verification counts into r.
func fillFromStats(r *results.Result, st *workload.Stats, recordSize int) {
	r.Records = st.Records
	r.Bytes = st.Bytes
	r.StreamBytes = st.Bytes + 4*st.Records
	r.Sent = st.Sent
	r.Lost = st.Lost
	r.Duplicated = st.Duplicated
	r.Reordered = st.Reordered
	r.ChecksumFailures = st.ChecksumFailures
	r.Invalid = st.Invalid
	r.LatencyUS = results.LatencyOf(st.Hist)
	if st.Incomplete > 0 && r.Error == "" {
		r.Error = fmt.Sprintf("%d channels ended without the producer's final counts", st.Incomplete)
	}
	r.Finish()
}

// runBench runs every transport in turn and reports.
func runBench(ctx context.Context, o *options, hooks Hooks, stdout, stderr io.Writer, log zerolog.Logger) int {
	if o.link.on {
		return runLinkBench(ctx, o, stdout, stderr, log)
	}
	if o.link.tcpCC != "" {
		hooks.TCPCongestion = o.link.tcpCC
	}
	rep := &results.Report{Config: o.resultsConfig()}
	tlsM, err := o.benchTLS()
	if err != nil {
		fmt.Fprintf(stderr, "exchange bench: %v\n", err)
		return ExitFailed
	}
	rep.Calibration = calibrate(ctx, o, hooks, tlsM, stderr)
	for i := range o.rep.repeat {
		if ctx.Err() != nil {
			break
		}
		rd := results.Round{Round: i + 1, Order: results.Rotate(o.transports.items, i)}
		for _, name := range rd.Order {
			if ctx.Err() != nil {
				break
			}
			rd.Results = append(rd.Results, runOne(ctx, o, name, hooks, tlsM, stderr, log))
		}
		rd.Ratios = results.RoundRatios(rd.Results)
		rep.Rounds = append(rep.Rounds, rd)
	}
	runs := make([][]results.Result, len(rep.Rounds))
	for i := range rep.Rounds {
		runs[i] = rep.Rounds[i].Results
	}
	if len(runs) == 1 {
		rep.Results = runs[0]
	} else {
		rep.Results = results.Aggregate(runs, func(i int) string { return fmt.Sprintf("round %d", i+1) })
	}
	rep.Summary = results.SummariseRounds(rep.Rounds, rep.Calibration)
	if err := rep.WriteTable(stdout); err != nil {
		return ExitFailed
	}
	if o.jsonPath != "" {
		if err := rep.WriteJSONFile(o.jsonPath); err != nil {
			fmt.Fprintf(stderr, "exchange bench: writing -json %s: %v\n", o.jsonPath, err)
			return ExitFailed
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "exchange bench: interrupted: the table above holds the counts so far (sent, received, lost, duplicated, reordered)")
		return ExitFailed
	}
	if !rep.Clean() {
		fmt.Fprintln(stderr, "exchange bench: verification FAILED (see lost/dup/reord/bad and errors above)")
		return ExitFailed
	}
	return ExitOK
}

// runOne runs one transport (or raw baseline) on loopback.
func runOne(ctx context.Context, o *options, name string, hooks Hooks, tlsM *tlsMaterial, stderr io.Writer, log zerolog.Logger) results.Result {
	return measurePeakRSS(o, name, func() results.Result {
		switch name {
		case tRawTCP, tRawQUIC:
			return runRaw(ctx, o, name, hooks, tlsM, stderr)
		}
		return runExchange(ctx, o, name, hooks, tlsM, stderr, log, nil)
	})
}

// calibrationBaselines are the raw baselines the calibration runs: those
// among the transports, else the raw counterparts of tcp and quic.
func calibrationBaselines(items []string) []string {
	var out []string
	has := map[string]bool{}
	for _, t := range items {
		has[t] = true
	}
	for _, pair := range [][2]string{{tTCP, tRawTCP}, {tQUIC, tRawQUIC}} {
		if has[pair[1]] || has[pair[0]] {
			out = append(out, pair[1])
		}
	}
	return out
}

// calibrate runs each raw baseline twice for -calibrate, interleaved, and
// returns their relative run-to-run differences (nil when there is
// nothing to calibrate).
func calibrate(ctx context.Context, o *options, hooks Hooks, tlsM *tlsMaterial, stderr io.Writer) *results.Calibration {
	bases := calibrationBaselines(o.transports.items)
	if o.rep.calibrate <= 0 || len(bases) == 0 {
		return nil
	}
	short := *o
	short.duration = o.rep.calibrate
	cal := &results.Calibration{Duration: o.rep.calibrate.String(), Diff: map[string]float64{}}
	first := map[string]*results.Result{}
	for range 2 {
		for _, name := range bases {
			if ctx.Err() != nil {
				return cal
			}
			r := runRaw(ctx, &short, name, hooks, tlsM, stderr)
			cal.Runs = append(cal.Runs, r)
			if r.Error != "" {
				continue
			}
			if a := first[name]; a != nil {
				cal.Diff[name] = results.RelativeDiff(a.StreamMBps(), r.StreamMBps())
			} else {
				first[name] = &r
			}
		}
	}
	return cal
}

func runRaw(ctx context.Context, o *options, name string, hooks Hooks, m *tlsMaterial, stderr io.Writer) results.Result {
	r := results.Result{Transport: name}
	var prog atomic.Int64
	start := time.Now()
	p := startProgress(o, stderr, "exchange bench: ", func() string {
		b := float64(prog.Load())
		el := time.Since(start).Seconds()
		return fmt.Sprintf("[%s] %.1fs/%v  %sB  %.0f MB/s", name, el, o.duration, si(b), b/el/1e6)
	})
	cpu0 := cpuSeconds()
	ro := raw.Options{SegmentSize: int(o.segmentSize.n), Duration: o.duration, Progress: &prog}
	var res *raw.Result
	var err error
	if name == tRawTCP {
		res, err = raw.TCP(ctx, ro, rawTCPOptions(hooks))
	} else {
		res, err = raw.QUIC(ctx, ro, rawQUICOptions(m, int(o.segmentSize.n), hooks))
	}
	r.CPUSeconds = cpuSeconds() - cpu0
	p.Stop()
	if err != nil {
		r.Error = err.Error()
	}
	if res != nil {
		r.Bytes = res.Bytes
		r.StreamBytes = res.Bytes
		r.Seconds = res.Seconds
		r.Lost, r.Duplicated, r.Reordered = res.Lost, res.Duplicated, res.Reordered
		r.LatencyUS = results.LatencyOf(res.Hist)
		r.Finish()
	}
	return r
}

// exchangeRun is one exchange transport's run: two environments on
// loopback, W partitions in the producer, R gates in the consumer.
type exchangeRun struct {
	o         *options
	name      string
	prodEnv   *exchange.Environment
	consEnv   *exchange.Environment
	producers []*workload.Producer
	mu        sync.Mutex // consumers: a blocking run sets them while the progress line reads
	consumers []*workload.Consumer
}

func (x *exchangeRun) close() {
	if x.consEnv != nil {
		x.consEnv.Close()
	}
	if x.prodEnv != nil {
		x.prodEnv.Close()
	}
}

// measureSpec switches on link-mode measurement in runExchange.
type measureSpec struct {
	// recordRate paces each writer (records/s), emitting up to
	// paceQuantum ahead of time.
	recordRate  float64
	paceQuantum time.Duration
	// warmup: records sent earlier are verified, not measured; grace is
	// the stall computation's allowance (workload.ChannelMeter).
	warmup, grace time.Duration
}

func runExchange(ctx context.Context, o *options, name string, hooks Hooks, m *tlsMaterial, stderr io.Writer, log zerolog.Logger, ms *measureSpec) results.Result {
	r := results.Result{Transport: name}
	x := &exchangeRun{o: o, name: name}
	defer x.close()
	var mem *memtransport.Network
	if name == tMem {
		mem = memtransport.NewNetwork()
	}
	newEnv := func(role string) (*exchange.Environment, error) {
		h := hooks.forRole(role)
		f := factory(name, h, o.transportSettings(), m, mem)
		addr := h.ProducerListen
		if role == "consumer" {
			addr = h.ConsumerListen
		}
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		return exchange.NewEnvironment(ctx, exchange.Config{
			NetworkMemory: o.networkMemory.n,
			SegmentSize:   int(o.segmentSize.n),
			Transport:     f,
			ListenAddr:    addr,
			SpillDir:      o.blk.spillDir,
			Logger:        log.With().Str("node", role).Logger(),
			// Both nodes export into one registry: the labels keep their
			// series apart.
			Metrics: o.metrics.registerer(prometheus.Labels{"node": role, "transport": name}),
		})
	}
	fail := func(err error) results.Result {
		r.Error = err.Error()
		return r
	}
	var err error
	if x.prodEnv, err = newEnv("producer"); err != nil {
		return fail(fmt.Errorf("producer environment: %w", err))
	}
	if x.consEnv, err = newEnv("consumer"); err != nil {
		return fail(fmt.Errorf("consumer environment: %w", err))
	}
	clock := workload.NewClock()
	job := fmt.Sprintf("bench-%s-%d", name, time.Now().UnixNano())
	parts := make([]*exchange.ResultPartition, o.writers)
	perWriter := splitRecords(o.records, o.writers)
	rate, quantum := o.recordRate, time.Duration(0)
	if ms != nil {
		rate, quantum = ms.recordRate, ms.paceQuantum
	}
	for w := range parts {
		if parts[w], err = x.prodEnv.CreatePartition(o.blk.partitionConfig(exchange.PartitionConfig{
			ID: exchange.PartitionIDFromName(job, w), Subpartitions: o.readers, BufferTimeout: o.bufferTimeout.d,
		})); err != nil {
			return fail(fmt.Errorf("partition %d: %w", w, err))
		}
		x.producers = append(x.producers, workload.NewProducer(workload.ProducerConfig{
			Writer: w, Writers: o.writers, Readers: o.readers, Selector: o.selector,
			RecordSize: o.recordSize, SampleEvery: o.sampleEvery, Batch: o.batch, Rate: rate, Records: perWriter[w],
			BufferTimeout: o.bufferTimeout.d, PaceQuantum: quantum, Verify: o.verify,
		}, clock))
	}
	openGates := func() error {
		consumers := make([]*workload.Consumer, 0, o.readers)
		for g := range o.readers {
			chans := make([]exchange.ChannelSpec, o.writers)
			for w := range chans {
				chans[w] = exchange.ChannelSpec{Partition: exchange.PartitionIDFromName(job, w), Subpartition: g, Addr: x.prodEnv.Addr()}
			}
			gate, err := x.consEnv.CreateInputGate(exchange.GateConfig{Channels: chans})
			if err != nil {
				return fmt.Errorf("input gate %d: %w", g, err)
			}
			c := workload.NewConsumer(gate, g, o.writers, o.readers, clock)
			if ms != nil {
				c.Verifier().Measure(int64(ms.warmup), int64(ms.grace))
			}
			consumers = append(consumers, c)
		}
		x.mu.Lock()
		x.consumers = consumers
		x.mu.Unlock()
		return nil
	}
	// A blocking run's consumers come after every partition finished,
	// as a batch scheduler deploys them (blocking.go).
	var phases *blockingPhases
	if o.blk.blocking() {
		phases = &blockingPhases{}
	} else if err := openGates(); err != nil {
		return fail(err)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var stop atomic.Bool
	start := time.Now()
	if o.stopsOnDuration() {
		timer := time.AfterFunc(o.duration, func() { stop.Store(true) })
		defer timer.Stop()
	}
	p := startProgress(o, stderr, "exchange bench: ", func() string { return x.progressLine(start) })
	cpu0 := cpuSeconds()

	var wg sync.WaitGroup
	var errMu sync.Mutex
	var firstErr error
	setErr := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel(err)
	}
	for w, pr := range x.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pr.Run(runCtx, parts[w], int(o.segmentSize.n), &stop)
			if err == nil {
				err = pr.Finish(runCtx, parts[w])
			}
			if err != nil && runCtx.Err() == nil {
				setErr(fmt.Errorf("writer %d: %w", w, err))
			}
		}()
	}
	if phases != nil {
		wg.Wait()
		phases.produced(start, parts)
		if runCtx.Err() == nil {
			if err := openGates(); err != nil {
				setErr(err)
			}
		}
	}
	var cwg sync.WaitGroup
	for _, c := range x.consumers {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			if err := c.Run(runCtx); err != nil && runCtx.Err() == nil {
				setErr(err)
			}
		}()
	}
	cwg.Wait()
	elapsed := time.Since(start) // until the last consumer is done
	wg.Wait()
	r.CPUSeconds = cpuSeconds() - cpu0
	p.Stop()

	var st workload.Stats
	for _, c := range x.consumers {
		s := c.Stats()
		st.Merge(&s)
	}
	r.Seconds = elapsed.Seconds()
	if firstErr != nil {
		r.Error = firstErr.Error()
	} else if ctx.Err() != nil {
		r.Error = "interrupted"
	}
	fillFromStats(&r, &st, o.recordSize)
	if ms != nil {
		r.Channels = lossy.SummariseChannels(st.Channels)
		r.LatencyCDF = lossy.CDF(st.Hist)
	}
	var sent int64
	for _, pr := range x.producers {
		for _, n := range pr.Sent() {
			sent += int64(n)
		}
	}
	if r.Error == "" && sent != st.Sent {
		r.Error = fmt.Sprintf("producers sent %d records, their final counts said %d", sent, st.Sent)
	}
	if phases != nil {
		r.Blocking = phases.result(&r, elapsed)
	}
	r.Compression = o.blk.compressionResult(parts)
	return r
}

func (x *exchangeRun) progressLine(start time.Time) string {
	var sent, recv int64
	for _, p := range x.producers {
		sent += p.Emitted()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.consumers {
		recv += c.Received()
	}
	el := time.Since(start).Seconds()
	limit := "/" + x.o.duration.String()
	if !x.o.stopsOnDuration() {
		limit = "" // a blocking run with -records
	}
	return fmt.Sprintf("[%s] %.1fs%s  sent %s  received %s  %.0f rec/ms", x.name, el, limit, si(float64(sent)), si(float64(recv)), float64(recv)/el/1000)
}

// splitRecords divides total records over n writers (0: unlimited).
func splitRecords(total int64, n int) []int64 {
	out := make([]int64, n)
	if total <= 0 {
		return out
	}
	for i := range out {
		out[i] = total / int64(n)
		if int64(i) < total%int64(n) {
			out[i]++
		}
	}
	// A writer with 0 of a positive total must not run unlimited.
	for i := range out {
		if out[i] == 0 {
			out[i] = -1
		}
	}
	return out
}
