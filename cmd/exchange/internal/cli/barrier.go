package cli

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
)

// barrierOptions are the flags of the barrier scenario and of buffer
// debloating (docs/architecture.md, "Buffer debloating").
type barrierOptions struct {
	mode          string // "", aligned, unaligned
	interval      time.Duration
	consumerRate  float64
	warmup        time.Duration
	debloat       bool
	debloatTarget time.Duration
}

const (
	barrierAligned   = "aligned"
	barrierUnaligned = "unaligned"
	// inFlightEvery is how often the scenario samples in-flight bytes.
	inFlightEvery = 50 * time.Millisecond
)

func (b *barrierOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&b.mode, "barrier", "", "run the barrier scenario instead of the throughput run: the writers inject a checkpoint barrier (aligned or unaligned) every -barrier-interval and the table adds how long barriers take to reach the consumer, the in-flight bytes per channel and the consumer's throughput; needs -record-rate (or -load on the emulated link)")
	fs.DurationVar(&b.interval, "barrier-interval", 500*time.Millisecond, "barrier scenario: time between checkpoint barriers")
	fs.Float64Var(&b.consumerRate, "consumer-rate", 0, "barrier scenario: limit each consumer to this fraction of the records offered to it (e.g. 0.1 = 10% of the producers' rate; 0: as fast as it can)")
	fs.DurationVar(&b.warmup, "barrier-warmup", 3*time.Second, "barrier scenario: barriers, in-flight bytes and throughput are measured after this much of each run")
	fs.BoolVar(&b.debloat, "debloat", false, "buffer debloating on every input gate (FLIP-183): consumers announce a buffer size that keeps about -debloat-target of data in flight")
	fs.DurationVar(&b.debloatTarget, "debloat-target", exchange.DefaultDebloatTarget, "with -debloat: the time the data in flight to a consumer should take to consume")
}

func (o *options) validateBarrier() error {
	b := &o.barrier
	switch b.mode {
	case "", barrierAligned, barrierUnaligned:
	default:
		return usagef("-barrier: unknown mode %q (want aligned or unaligned)", b.mode)
	}
	if b.debloatTarget <= 0 {
		return usagef("-debloat-target must be positive (got %v)", b.debloatTarget)
	}
	if b.mode == "" {
		for _, f := range []string{"barrier-interval", "consumer-rate", "barrier-warmup"} {
			if o.set[f] {
				return usagef("-%s needs -barrier aligned or -barrier unaligned", f)
			}
		}
		return nil
	}
	if b.interval <= 0 {
		return usagef("-barrier-interval must be positive (got %v)", b.interval)
	}
	if b.consumerRate < 0 || b.consumerRate > 1 || math.IsNaN(b.consumerRate) {
		return usagef("-consumer-rate must be a fraction in [0, 1] (got %v)", b.consumerRate)
	}
	if b.warmup < 0 || b.warmup >= o.duration {
		return usagef("-barrier-warmup must be >= 0 and shorter than -duration (got %v of %v)", b.warmup, o.duration)
	}
	if o.recordRate <= 0 && !o.link.paces() {
		return usagef("-barrier needs a paced producer: give -record-rate (or -load on the emulated link)")
	}
	for _, t := range o.transports.items {
		if t == tRawTCP || t == tRawQUIC {
			return usagef("-barrier runs the exchange only: -transport %s has no barriers (use tcp, quic or mem)", t)
		}
	}
	if o.blk.blocking() {
		return usagef("-barrier needs pipelined partitions (checkpoint barriers stream with the records), not -partition-type blocking")
	}
	if o.selector == "broadcast" {
		return usagef("-barrier needs a unicast -selector (roundrobin or hash)")
	}
	return nil
}

// debloatConfig is the gates' debloating setting.
func (b *barrierOptions) debloatConfig() exchange.DebloatConfig {
	return exchange.DebloatConfig{Enabled: b.debloat, Target: b.debloatTarget}
}

// newBenchEnv creates one node of a bench run ("producer" or
// "consumer") on transport name.
func newBenchEnv(ctx context.Context, o *options, name, role string, hooks Hooks, m *tlsMaterial, mem *memtransport.Network, log zerolog.Logger) (*exchange.Environment, error) {
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

// barrierRun is one transport's run of the barrier scenario: W paced
// writers, R throttled consumers, a barrier every interval.
type barrierRun struct {
	o        *options
	rate     float64 // records/s per writer
	start    time.Time
	measured time.Time // start + warmup

	// emitted[w][r] and taken[r][w]: records of channel (w, r).
	emitted [][]atomic.Int64
	taken   [][]atomic.Int64

	mu        sync.Mutex
	injected  []time.Time // barrier ID-1 -> when it was injected
	latencies []float64   // ms, arrivals of barriers injected after warmup
	lastSeen  [][]int64   // [r][w]: last barrier ID arrived
	lost      int64
	reordered int64

	inFlightSum, inFlightMax float64
	inFlightN                int64
	// The throughput window: from the first sample after warmup.
	warmAt    time.Time
	takenWarm int64
}

// runBarrier runs the barrier scenario on transport name (ms: on the
// emulated link, its pacing).
func runBarrier(ctx context.Context, o *options, name string, hooks Hooks, m *tlsMaterial, log zerolog.Logger, ms *measureSpec) results.Result {
	r := results.Result{Transport: name}
	rate := o.recordRate
	if ms != nil {
		rate = ms.recordRate
	}
	x := &barrierRun{o: o, rate: rate,
		emitted: make([][]atomic.Int64, o.writers), taken: make([][]atomic.Int64, o.readers), lastSeen: make([][]int64, o.readers)}
	for w := range x.emitted {
		x.emitted[w] = make([]atomic.Int64, o.readers)
	}
	for g := range x.taken {
		x.taken[g] = make([]atomic.Int64, o.writers)
		x.lastSeen[g] = make([]int64, o.writers)
	}
	var mem *memtransport.Network
	if name == tMem {
		mem = memtransport.NewNetwork()
	}
	prodEnv, err := newBenchEnv(ctx, o, name, "producer", hooks, m, mem, log)
	if err != nil {
		r.Error = fmt.Sprintf("producer environment: %v", err)
		return r
	}
	defer prodEnv.Close()
	consEnv, err := newBenchEnv(ctx, o, name, "consumer", hooks, m, mem, log)
	if err != nil {
		r.Error = fmt.Sprintf("consumer environment: %v", err)
		return r
	}
	defer consEnv.Close()

	job := fmt.Sprintf("barrier-%s-%d", name, time.Now().UnixNano())
	parts := make([]*exchange.ResultPartition, o.writers)
	for w := range parts {
		if parts[w], err = prodEnv.CreatePartition(exchange.PartitionConfig{
			ID: exchange.PartitionIDFromName(job, w), Subpartitions: o.readers, BufferTimeout: o.bufferTimeout.d,
		}); err != nil {
			r.Error = fmt.Sprintf("partition %d: %v", w, err)
			return r
		}
	}
	gates := make([]*exchange.InputGate, o.readers)
	for g := range gates {
		chans := make([]exchange.ChannelSpec, o.writers)
		for w := range chans {
			chans[w] = exchange.ChannelSpec{Partition: exchange.PartitionIDFromName(job, w), Subpartition: g, Addr: prodEnv.Addr()}
		}
		if gates[g], err = consEnv.CreateInputGate(exchange.GateConfig{Channels: chans, Debloat: o.barrier.debloatConfig()}); err != nil {
			r.Error = fmt.Sprintf("input gate %d: %v", g, err)
			return r
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	x.start = time.Now()
	x.measured = x.start.Add(o.barrier.warmup)
	cpu0 := cpuSeconds()
	var wg sync.WaitGroup
	errs := make(chan error, o.writers+o.readers+1)
	for w := range parts {
		wg.Go(func() { errs <- x.produce(runCtx, parts[w], w) })
	}
	for g := range gates {
		wg.Go(func() { errs <- x.consume(runCtx, gates[g], g) })
	}
	wg.Go(func() { x.sampleInFlight(runCtx) })
	wg.Go(func() { errs <- x.inject(runCtx, parts) })
	wg.Wait()
	end := time.Now()
	r.CPUSeconds = cpuSeconds() - cpu0
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && r.Error == "" {
			r.Error = err.Error()
		}
	}
	if ctx.Err() != nil && r.Error == "" {
		r.Error = "interrupted"
	}
	var bufSize float64
	for _, g := range gates {
		bufSize += float64(g.BufferSize()) / float64(len(gates))
		g.Close()
	}
	for _, p := range parts {
		p.Release()
	}
	x.fill(&r, end, bufSize)
	return r
}

// runEnded is err, or the run's end if it came after it: the deadline
// cancels an Emit that may be inside a record spanning buffers, which
// fails the partition (a cut record is never delivered), so its channels
// fail while a lagging consumer still works through older data. Records
// lost before the end are still counted by the sequence check.
func runEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// produce writes paced records to every subpartition in turn: each
// carries its channel's sequence number.
func (x *barrierRun) produce(ctx context.Context, p *exchange.ResultPartition, w int) error {
	rec := make([]byte, x.o.recordSize)
	interval := time.Duration(float64(time.Second) / x.rate)
	due := time.Now()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for i := 0; ; i++ {
		// Up to 1 ms ahead: a timer per record would cost more CPU than
		// the exchange at these rates.
		if d := time.Until(due); d > time.Millisecond {
			t.Reset(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else if d < -time.Second {
			due = time.Now() // far behind (backpressure): do not burst
		}
		due = due.Add(interval)
		sub := i % x.o.readers
		binary.BigEndian.PutUint64(rec, uint64(x.emitted[w][sub].Load()))
		if err := p.EmitTo(ctx, sub, rec); err != nil {
			return runEnded(ctx, err)
		}
		x.emitted[w][sub].Add(1)
	}
}

// inject broadcasts a checkpoint barrier on every partition each
// interval, stamped with the time it was injected.
func (x *barrierRun) inject(ctx context.Context, parts []*exchange.ResultPartition) error {
	t := time.NewTicker(x.o.barrier.interval)
	defer t.Stop()
	for id := int64(1); ; id++ {
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
		now := time.Now()
		x.mu.Lock()
		x.injected = append(x.injected, now)
		x.mu.Unlock()
		ev := exchange.CheckpointBarrier{ID: id, Timestamp: now.UnixNano(), Unaligned: x.o.barrier.mode == barrierUnaligned}
		for _, p := range parts {
			if err := p.BroadcastEvent(ctx, ev); err != nil {
				return err
			}
		}
	}
}

// consume takes records at most consumerRate of what the writers offer
// this gate, checks every channel's sequence, and times barriers; an
// aligned barrier's channel is resumed once the barrier arrived on all
// of the gate's channels (alignment).
func (x *barrierRun) consume(ctx context.Context, g *exchange.InputGate, gi int) error {
	var limit float64 // records/s
	if f := x.o.barrier.consumerRate; f > 0 {
		limit = f * x.rate * float64(x.o.writers) / float64(x.o.readers)
	}
	aligned := map[int64]int{} // barrier ID -> channels arrived
	var n int64
	due := time.Now()
	var evErr error
	handle := func(el exchange.Element) bool {
		if el.Record == nil {
			evErr = x.event(g, gi, el, aligned)
			return false
		}
		want := x.taken[gi][el.Channel].Load()
		switch got := int64(binary.BigEndian.Uint64(el.Record)); {
		case got > want:
			x.count(&x.lost, got-want)
		case got < want:
			x.count(&x.reordered, 1)
		}
		x.taken[gi][el.Channel].Store(int64(binary.BigEndian.Uint64(el.Record)) + 1)
		n++
		return true
	}
	for {
		asked := time.Now()
		if err := g.NextBatch(ctx, handle); err != nil {
			return runEnded(ctx, err)
		}
		if evErr != nil {
			return runEnded(ctx, evErr)
		}
		if limit > 0 {
			// Each record costs 1/limit. Time spent waiting for data is
			// lost (a starved operator does not run faster afterwards);
			// a sleep that overslept is made up.
			if now := time.Now(); now.Sub(asked) > time.Millisecond && due.Before(now) {
				due = now
			}
			due = due.Add(time.Duration(float64(n) / limit * float64(time.Second)))
			n = 0
			if d := time.Until(due); d > time.Millisecond {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
}

func (x *barrierRun) count(c *int64, n int64) {
	x.mu.Lock()
	*c += n
	x.mu.Unlock()
}

func (x *barrierRun) event(g *exchange.InputGate, gi int, el exchange.Element, aligned map[int64]int) error {
	b, ok := el.Event.(exchange.CheckpointBarrier)
	if !ok {
		return nil
	}
	now := time.Now()
	x.mu.Lock()
	x.lastSeen[gi][el.Channel] = b.ID
	if int(b.ID) <= len(x.injected) && !x.injected[b.ID-1].Before(x.measured) {
		x.latencies = append(x.latencies, float64(now.UnixNano()-b.Timestamp)/1e6)
	}
	x.mu.Unlock()
	if b.Unaligned {
		return nil
	}
	if aligned[b.ID]++; aligned[b.ID] < x.o.writers {
		return nil
	}
	delete(aligned, b.ID)
	for ch := range x.o.writers {
		if err := g.ResumeConsumption(ch); err != nil {
			return fmt.Errorf("resuming channel %d of gate %d after barrier %d: %w", ch, gi, b.ID, err)
		}
	}
	return nil
}

// sampleInFlight samples every channel's written-but-not-taken bytes.
func (x *barrierRun) sampleInFlight(ctx context.Context) {
	t := time.NewTicker(inFlightEvery)
	defer t.Stop()
	framed := float64(x.o.recordSize + 4)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Before(x.measured) {
				continue
			}
			x.mu.Lock()
			if x.warmAt.IsZero() {
				x.warmAt, x.takenWarm = now, x.totalTaken()
			}
			for w := range x.emitted {
				for g := range x.taken {
					b := float64(max(0, x.emitted[w][g].Load()-x.taken[g][w].Load())) * framed
					x.inFlightSum += b
					x.inFlightMax = max(x.inFlightMax, b)
					x.inFlightN++
				}
			}
			x.mu.Unlock()
		}
	}
}

// fill summarises the run into r: barrier latencies (pending barriers
// with their age at end), in-flight bytes, throughput after warmup.
func (x *barrierRun) fill(r *results.Result, end time.Time, bufSize float64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	b := &results.Barrier{Mode: x.o.barrier.mode, Debloat: x.o.barrier.debloat, BufferSize: bufSize, ConsumerRate: x.o.barrier.consumerRate}
	b.Arrived = len(x.latencies)
	lat := x.latencies
	for g := range x.lastSeen {
		for _, seen := range x.lastSeen[g] {
			for id := seen + 1; id <= int64(len(x.injected)); id++ {
				if at := x.injected[id-1]; !at.Before(x.measured) {
					lat = append(lat, float64(end.Sub(at))/1e6)
					b.Pending++
				}
			}
		}
	}
	b.Latency = results.LatencyMSOf(lat)
	if x.inFlightN > 0 {
		b.InFlightMeanBytes = x.inFlightSum / float64(x.inFlightN)
		b.InFlightMaxBytes = x.inFlightMax
	}
	var sent int64
	for w := range x.emitted {
		for g := range x.emitted[w] {
			sent += x.emitted[w][g].Load()
		}
	}
	taken := x.totalTaken()
	r.Sent = sent
	r.Records = taken
	r.Bytes = taken * int64(x.o.recordSize)
	r.StreamBytes = r.Bytes + 4*taken
	r.Seconds = end.Sub(x.start).Seconds()
	r.Lost, r.Reordered = x.lost, x.reordered
	r.Finish()
	if s := end.Sub(x.warmAt).Seconds(); !x.warmAt.IsZero() && s > 0 {
		b.RecordsPerSec = float64(taken-x.takenWarm) / s
		b.MBytesPerSec = b.RecordsPerSec * float64(x.o.recordSize+4) / 1e6
	}
	r.Barrier = b
}

func (x *barrierRun) totalTaken() int64 {
	var n int64
	for g := range x.taken {
		for w := range x.taken[g] {
			n += x.taken[g][w].Load()
		}
	}
	return n
}

// writeBarrierRounds prints the barrier table of every round (bench on
// loopback).
func writeBarrierRounds(w io.Writer, rounds []results.Round) {
	for _, rd := range rounds {
		writeBarrierResults(w, rd.Results, fmt.Sprintf("round %d", rd.Round))
	}
}

// writeBarrierResults prints the barrier table of rs, if they have one.
func writeBarrierResults(w io.Writer, rs []results.Result, label string) {
	for _, r := range rs {
		if r.Barrier != nil {
			_ = results.WriteBarrierTable(w, rs, func(int) string { return label })
			return
		}
	}
}
