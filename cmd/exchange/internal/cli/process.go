package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/bench/workload"
	"github.com/qexchange/qexchange/exchange"
)

// handshakeTimeout bounds one connection attempt of serve/consume.
func handshakeTimeout(wait time.Duration) time.Duration {
	return min(max(wait/4, time.Second), 10*time.Second)
}

// serveShutdownBound bounds serve's delivery-safe shutdown: the wait for
// its consumers to take the EndOfPartition of every subpartition once they
// acknowledged their records. A consumer that died is noticed sooner, by
// its transport (tcp at once, quic within its idle timeout).
const serveShutdownBound = 30 * time.Second

// runServe hosts the producer partitions until every consumer is done.
func runServe(ctx context.Context, o *options, hooks Hooks, stdout, stderr io.Writer, log zerolog.Logger) int {
	name := o.transports.items[0]
	contact := newFirstContact()
	f, err := processFactory(o, hooks.withFirstContact(contact), handshakeTimeout(10*time.Second), stderr)
	if err != nil {
		fmt.Fprintf(stderr, "exchange serve: %v\n", err)
		return ExitFailed
	}
	env, err := exchange.NewEnvironment(ctx, exchange.Config{
		NetworkMemory: o.networkMemory.n,
		SegmentSize:   int(o.segmentSize.n),
		Transport:     f,
		ListenAddr:    o.listen,
		AdvertiseAddr: o.advertise,
		Logger:        log,
		Metrics:       o.metrics.registerer(nil),
	})
	if err != nil {
		fmt.Fprintf(stderr, "exchange serve: %v\n", err)
		return ExitFailed
	}
	defer env.Close()
	clock := workload.NewClock()
	parts := make([]*exchange.ResultPartition, o.writers)
	producers := make([]*workload.Producer, o.writers)
	perWriter := splitRecords(o.records, o.writers)
	for w := range parts {
		if parts[w], err = env.CreatePartition(exchange.PartitionConfig{
			ID: exchange.PartitionIDFromName(o.job, w), Subpartitions: o.readers, BufferTimeout: o.bufferTimeout.d,
		}); err != nil {
			fmt.Fprintf(stderr, "exchange serve: partition %d: %v\n", w, err)
			return ExitFailed
		}
		producers[w] = workload.NewProducer(workload.ProducerConfig{
			Writer: w, Writers: o.writers, Readers: o.readers, Selector: o.selector,
			RecordSize: o.recordSize, SampleEvery: o.sampleEvery, Batch: o.batch, Rate: o.recordRate, Records: perWriter[w],
			BufferTimeout: o.bufferTimeout.d, Verify: o.verify,
		}, clock)
	}
	fmt.Fprintf(stdout, "listening %s %s\n", name, env.Addr()) // the address consumers dial: never a wildcard
	if fl, ok := stdout.(interface{ Sync() error }); ok {
		_ = fl.Sync()
	}
	emitted := func() int64 {
		var n int64
		for _, p := range producers {
			n += p.Emitted()
		}
		return n
	}

	// The run, its clock and -duration start with the first consumer:
	// records emitted before it would wait in full buffers, and their
	// age and the idle time would be reported as the exchange's.
	log.Info().Msg("waiting for the first consumer")
	select {
	case <-contact.Done():
	case <-ctx.Done():
		fmt.Fprintln(stderr, "exchange serve: interrupted before any consumer connected: emitted 0 records")
		return ExitFailed
	}
	start := time.Now()
	var stop atomic.Bool
	if o.duration > 0 {
		t := time.AfterFunc(o.duration, func() { stop.Store(true) })
		defer t.Stop()
	}
	p := startProgress(o, stderr, "exchange serve: ", func() string {
		el := time.Since(start).Seconds()
		n := emitted()
		return fmt.Sprintf("[%s %s] %.1fs  emitted %s  %.0f rec/ms", name, env.Addr(), el, si(float64(n)), float64(n)/el/1000)
	})
	defer p.Stop()
	interrupted := func(what string) int {
		fmt.Fprintf(stderr, "exchange serve: interrupted after %.2fs %s: emitted %d records\n", time.Since(start).Seconds(), what, emitted())
		return ExitFailed
	}
	// A consumer that goes away (its process killed, its path silent for
	// the transport's dead-peer bound) ends the run at once: the records
	// for it can no longer be delivered.
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	for _, part := range parts {
		go func() {
			if err := part.WaitAllRecordsProcessed(runCtx); errors.Is(err, exchange.ErrConsumerLost) {
				cancelRun(err)
			}
		}()
	}
	consumerLost := func() int {
		fmt.Fprintf(stderr, "exchange serve: after %.2fs, %d records emitted: %v\n", time.Since(start).Seconds(), emitted(), context.Cause(runCtx))
		return ExitFailed
	}
	var wg sync.WaitGroup
	errs := make([]error, o.writers)
	for w := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = producers[w].Run(runCtx, parts[w], int(o.segmentSize.n), &stop)
		}()
	}
	wg.Wait()
	emitTook := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		if ctx.Err() != nil {
			return interrupted("before every record was emitted")
		}
		if runCtx.Err() != nil {
			return consumerLost()
		}
		fmt.Fprintf(stderr, "exchange serve: %v\n", err)
		return ExitFailed
	}
	var sent int64
	for _, p := range producers {
		for _, n := range p.Sent() {
			sent += int64(n)
		}
	}
	log.Info().Int64("records", sent).Dur("took", emitTook).Msg("all records emitted; waiting for consumers")
	// The one delivery-safe sequence (exchange.ResultPartition.Finish):
	// EndOfData (sent by Run), every consumer's acknowledgement, Finish,
	// then Shutdown, which waits until the consumers took EndOfPartition.
	for w, part := range parts {
		if err := part.WaitAllRecordsProcessed(runCtx); err != nil {
			if ctx.Err() != nil {
				return interrupted(fmt.Sprintf("while the consumers of partition %d (and maybe more) had not acknowledged their records", w))
			}
			fmt.Fprintf(stderr, "exchange serve: partition %d: %v\n", w, err)
			return ExitFailed
		}
		if err := part.Finish(runCtx); err != nil {
			fmt.Fprintf(stderr, "exchange serve: partition %d: %v\n", w, err)
			return ExitFailed
		}
	}
	sdCtx, cancelSd := context.WithTimeout(ctx, serveShutdownBound)
	defer cancelSd()
	if err := env.Shutdown(sdCtx); err != nil {
		if ctx.Err() != nil {
			return interrupted("while the consumers were taking the end of their partitions")
		}
		fmt.Fprintf(stderr, "exchange serve: %v\n", err)
		return ExitFailed
	}
	total := time.Since(start)
	fmt.Fprintf(stdout, "served %d records (%d bytes each) to %d consumers in %.2fs from the first consumer's connection (%.1f rec/ms)\n",
		sent, o.recordSize, o.readers, total.Seconds(), float64(sent)/total.Seconds()/1000)
	return ExitOK
}

// consumeListen is the consumer node's own address: its transport dials
// from the socket it listens on (QUIC), so a remote producer needs a
// non-loopback one.
func consumeListen(o *options) string {
	if o.listen != "" {
		return o.listen
	}
	host, _, _ := net.SplitHostPort(o.connect)
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		if ip != nil && ip.To4() == nil {
			return "[::1]:0"
		}
		return "127.0.0.1:0"
	}
	return ":0"
}

// backoffFor maps -wait onto the gate's retry schedule: delays start at
// 100 ms and double while below MaxBackoff, then MaxBackoff is waited
// once more before the channel fails. With delays initial..p (< m) and
// then m, they add up to (2p - initial) + m; MaxBackoff m is the smallest
// for which that is at least wait.
func backoffFor(wait time.Duration) (initial, maxB time.Duration) {
	initial = exchange.DefaultInitialBackoff
	if wait <= initial {
		return initial, initial
	}
	for p := initial; ; p *= 2 {
		m := wait - (2*p - initial)
		if m > 2*p {
			continue
		}
		if m <= p {
			// wait falls between two schedules: take the longer one.
			m = p + time.Millisecond
		}
		return initial, m
	}
}

// retryTotal is the sum of the retry delays for a schedule (for tests).
func retryTotal(initial, maxB time.Duration) time.Duration {
	var total time.Duration
	for d := initial; ; d = min(2*d, maxB) {
		total += d
		if d == maxB {
			return total
		}
	}
}

// runConsume reads every channel of the job from the producer at -connect.
func runConsume(ctx context.Context, o *options, hooks Hooks, stdout, stderr io.Writer, log zerolog.Logger) int {
	name := o.transports.items[0]
	addr := o.connect
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "exchange consume: "+format+"\n", a...)
		return ExitFailed
	}
	hs := handshakeTimeout(o.wait)
	f, err := processFactory(o, hooks, hs, stderr)
	if err != nil {
		return fail("%v", err)
	}
	env, err := exchange.NewEnvironment(ctx, exchange.Config{
		NetworkMemory: o.networkMemory.n,
		SegmentSize:   int(o.segmentSize.n),
		Transport:     f,
		ListenAddr:    consumeListen(o),
		Logger:        log,
		Metrics:       o.metrics.registerer(nil),
	})
	if err != nil {
		return fail("%v", err)
	}
	closed := make(chan struct{})
	closeWait := 100 * time.Millisecond
	defer func() {
		// Bounded: a failed run must exit promptly even if the teardown
		// of a dead connection lingers.
		go func() { env.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(closeWait):
		}
	}()
	clock := workload.NewClock()
	ib, mb := backoffFor(o.wait)
	consumers := make([]*workload.Consumer, o.readers)
	for g := range consumers {
		chans := make([]exchange.ChannelSpec, o.writers)
		for w := range chans {
			chans[w] = exchange.ChannelSpec{Partition: exchange.PartitionIDFromName(o.job, w), Subpartition: g, Addr: addr}
		}
		gate, err := env.CreateInputGate(exchange.GateConfig{Channels: chans, InitialBackoff: ib, MaxBackoff: mb})
		if err != nil {
			return fail("input gate %d: %v", g, err)
		}
		consumers[g] = workload.NewConsumer(gate, g, o.writers, o.readers, clock)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	cpu0 := cpuSeconds()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for _, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(runCtx); err != nil {
				mu.Lock()
				if firstErr == nil && runCtx.Err() == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel(err)
			}
		}()
	}
	// Watchdog: the producer must show up within -wait (plus one
	// connection attempt), whatever the retry schedule does.
	started := func() bool {
		for _, c := range consumers {
			if c.Started() {
				return true
			}
		}
		return false
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	watchdog := time.NewTimer(o.wait + hs + time.Second)
	defer watchdog.Stop()
	p := startProgress(o, stderr, "exchange consume: ", func() string {
		var n int64
		for _, c := range consumers {
			n += c.Received()
		}
		return fmt.Sprintf("[%s %s] %.1fs  received %s", name, addr, time.Since(start).Seconds(), si(float64(n)))
	})
wait:
	for {
		select {
		case <-done:
			break wait
		case <-watchdog.C:
			if !started() {
				cancel(errNoProducer)
				mu.Lock()
				if firstErr == nil {
					firstErr = errNoProducer
				}
				mu.Unlock()
				<-done
				break wait
			}
		}
	}
	elapsed := time.Since(start) // until the last consumer is done
	p.Stop()
	cpu := cpuSeconds() - cpu0

	if firstErr != nil {
		var cf *workload.ChannelFailure
		switch {
		case errors.Is(firstErr, errNoProducer):
			return fail("no producer at %s (%s) after waiting %v (-wait): nothing arrived", addr, name, o.wait)
		case errors.As(firstErr, &cf) && !started() && permanent(cf.Err.Err):
			// Permanent (refused, authentication, version, DNS): not waited for.
			return fail("cannot consume from %s (%s): %v", addr, name, cf.Err.Err)
		case errors.As(firstErr, &cf) && !started():
			return fail("no producer at %s (%s) after waiting %v (-wait): %v", addr, name, o.wait, cf.Err.Err)
		case errors.As(firstErr, &cf):
			return fail("lost the producer at %s (%s) mid-stream: %v", addr, name, cf.Err.Err)
		}
		if ctx.Err() != nil {
			return interruptedConsume(stderr, consumers, elapsed, addr)
		}
		return fail("from producer at %s: %v", addr, firstErr)
	}
	if ctx.Err() != nil {
		return interruptedConsume(stderr, consumers, elapsed, addr)
	}

	closeWait = 5 * time.Second // success: close cleanly
	var st workload.Stats
	var firstAt time.Time
	recordSize := 0
	for _, c := range consumers {
		s := c.Stats()
		st.Merge(&s)
		if t := c.FirstAt(); !t.IsZero() && (firstAt.IsZero() || t.Before(firstAt)) {
			firstAt = t
		}
		if n := c.Verifier().RecordSize(); n > 0 {
			recordSize = n
		}
	}
	cfg := o.resultsConfig()
	cfg.RecordSize = recordSize
	cfg.Selector = consumers[0].Verifier().Selector()
	if h := consumers[0].Verifier().ProducerHello(); h.RecordSize > 0 {
		cfg.BufferTimeout = formatTimeout(h.BufferTimeout)
		cfg.RecordRate = h.Rate
		cfg.SampleEvery = h.SampleEvery
	}
	cfg.Verify = ""
	if recordSize > 0 {
		cfg.Verify = workload.VerifyFull
		if consumers[0].Verifier().ProducerHello().ChecksumEvery > 1 {
			cfg.Verify = workload.VerifySampled
		}
		cfg.Verification = workload.Verification(recordSize, cfg.Verify)
	}
	r := results.Result{Transport: name, CPUSeconds: cpu}
	if !firstAt.IsZero() {
		elapsed -= firstAt.Sub(start)
	}
	r.Seconds = elapsed.Seconds()
	fillFromStats(&r, &st, recordSize)
	rep := &results.Report{Config: cfg, Results: []results.Result{r}}
	if err := rep.WriteTable(stdout); err != nil {
		return ExitFailed
	}
	if o.jsonPath != "" {
		if err := rep.WriteJSONFile(o.jsonPath); err != nil {
			return fail("writing -json %s: %v", o.jsonPath, err)
		}
	}
	if !rep.Clean() {
		return fail("verification FAILED for the records from %s", addr)
	}
	return ExitOK
}

var errNoProducer = errors.New("no producer")

// interruptedConsume reports what arrived before SIGINT/SIGTERM: the
// counts so far (records still in flight, and the producer's final
// counts, are unknown, so the lost figure counts only gaps seen).
func interruptedConsume(stderr io.Writer, consumers []*workload.Consumer, elapsed time.Duration, addr string) int {
	var st workload.Stats
	for _, c := range consumers {
		s := c.Stats()
		st.Merge(&s)
	}
	fmt.Fprintf(stderr, "exchange consume: interrupted after %.2fs: received %d records from %s; so far lost %d, duplicated %d, reordered %d, corrupted %d, invalid %d\n",
		elapsed.Seconds(), st.Records, addr, st.Lost, st.Duplicated, st.Reordered, st.ChecksumFailures, st.Invalid)
	return ExitFailed
}

// permanent: a consumer's failure that was not retried (refused,
// authentication, version, frame size, unknown host), so the message
// must not say that the producer was waited for.
func permanent(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return true
	}
	return !errors.Is(err, exchange.ErrPartitionNotFound) && !errors.Is(err, exchange.ErrConnectionLost)
}
