// Package workload is the benchmark's traffic: the verified record format,
// the producer loop (one goroutine per result partition) and the consumer
// loop (one goroutine per input gate).
package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// ProducerConfig describes one writer.
type ProducerConfig struct {
	Writer, Writers, Readers int
	Selector                 string
	RecordSize               int
	// SampleEvery: one record in SampleEvery carries a fresh timestamp
	// and a sampled flag, and the consumer measures its latency (default
	// DefaultSampleEvery, 1 with a Rate).
	SampleEvery int
	// Rate limits the writer to Rate records per second (0: unlimited).
	Rate float64
	// Records stops the writer after that many records (0: until Stop).
	Records int64
	// BufferTimeout is the partition's, reported in the hello.
	BufferTimeout time.Duration
	// Verify is the verification mode, VerifyFull ("" too) or
	// VerifySampled; the consumers learn it from the hello.
	Verify string
	// PaceQuantum (with Rate) lets the writer emit records up to this
	// much ahead of their due time instead of sleeping for each one: at
	// tens of thousands of records/s per writer a timer per record costs
	// more CPU than the exchange itself, and on a 2-core host that CPU
	// would be taken from the transports being measured. Each record is
	// still timestamped when it is emitted. 0 sleeps for every record.
	PaceQuantum time.Duration
	// Batch is how many records the writer builds and hands to
	// RecordWriter.EmitAll at once (one lock for all of them); 1 emits
	// record by record with Emit. 0: DefaultBatch without a Rate, 1 with
	// one (see BatchSize).
	Batch int
}

// DefaultBatch is the records per EmitAll of an unpaced writer: enough to
// spread the writer lock's cost to well under a nanosecond per record,
// small enough (512 B of 8-byte records) to stay in L1.
const DefaultBatch = 64

// MaxBatchBytes bounds a writer's batch of records: large records gain
// nothing from batches (the lock is a small part of their cost), and 64
// of them would be a large arena.
const MaxBatchBytes = 256 << 10

// BatchSize resolves the records per EmitAll: 1 for paced writers (each
// record goes out at its due time), else requested if > 0, else
// DefaultBatch, at most MaxBatchBytes of records.
func BatchSize(recordSize int, rate float64, requested int) int {
	if rate > 0 {
		return 1
	}
	n := DefaultBatch
	if requested > 0 {
		n = requested
	}
	return max(1, min(n, MaxBatchBytes/max(recordSize, 1)))
}

// Producer writes one partition's records.
type Producer struct {
	cfg     ProducerConfig
	clock   *Clock
	enc     *Encoder
	emitted atomic.Int64
}

// SampleEvery resolves the sampling interval: requested if > 0, every
// record for paced runs, else DefaultSampleEvery. (Reading the clock twice
// per record, on the producer and the consumer, costs more than the rest
// of the verification; 1 in 16 still gives hundreds of thousands of
// samples per second.) recordSize is kept for future size-dependent
// choices.
func SampleEvery(recordSize int, rate float64, requested int) int {
	switch {
	case requested > 0:
		return requested
	case rate > 0:
		return 1
	}
	return DefaultSampleEvery
}

// NewProducer prepares writer cfg.Writer.
func NewProducer(cfg ProducerConfig, clock *Clock) *Producer {
	cfg.SampleEvery = SampleEvery(cfg.RecordSize, cfg.Rate, cfg.SampleEvery)
	cfg.Batch = BatchSize(cfg.RecordSize, cfg.Rate, cfg.Batch)
	enc := NewEncoder(cfg.Writer, cfg.Readers, cfg.Selector, cfg.RecordSize, cfg.SampleEvery, clock)
	enc.SetVerify(cfg.Verify)
	return &Producer{cfg: cfg, clock: clock, enc: enc}
}

// Emitted is the number of records written so far (updated every 256).
func (p *Producer) Emitted() int64 { return p.emitted.Load() }

// Sent returns the records sent to each subpartition (after Run).
func (p *Producer) Sent() []uint64 { return p.enc.SentCounts() }

// Selector returns the exchange selector for a selector name.
func Selector(name string) exchange.ChannelSelector {
	switch name {
	case Hash:
		return exchange.Hash{Key: HashKey}
	case Broadcast:
		return exchange.Broadcast{}
	}
	return &exchange.RoundRobin{}
}

// Run writes the hello, records until stop is set, ctx ends or
// cfg.Records are written, then the final counts and EndOfData (Finish
// follows). segmentSize bounds the control events.
func (p *Producer) Run(ctx context.Context, part *exchange.ResultPartition, segmentSize int, stop *atomic.Bool) error {
	cfg := p.cfg
	rw := exchange.NewRecordWriter(part, Selector(cfg.Selector))
	hello := Hello{
		Writer: cfg.Writer, Writers: cfg.Writers, Readers: cfg.Readers,
		Selector: cfg.Selector, RecordSize: cfg.RecordSize, SampleEvery: cfg.SampleEvery,
		BufferTimeout: cfg.BufferTimeout, Rate: cfg.Rate,
		ClockAbs: p.clock.Abs, BootID: p.clock.BootID,
		ChecksumEvery: ChecksumEvery(cfg.Verify),
	}
	if err := rw.BroadcastEvent(ctx, exchange.UserEvent{Payload: hello.Encode()}); err != nil {
		return err
	}
	var err error
	if cfg.Batch > 1 {
		err = p.emitBatches(ctx, rw, stop)
	} else {
		err = p.emitEach(ctx, rw, stop)
	}
	if err != nil {
		return err
	}
	p.emitted.Store(int64(p.enc.Emitted()))
	for _, ev := range EndEvents(cfg.Writer, p.enc.SentCounts(), segmentSize-64) {
		if err := rw.BroadcastEvent(ctx, exchange.UserEvent{Payload: ev}); err != nil {
			return err
		}
	}
	return part.EndOfData(ctx)
}

// emitBatches writes records cfg.Batch at a time with EmitAll until stop,
// ctx or cfg.Records.
func (p *Producer) emitBatches(ctx context.Context, rw *exchange.RecordWriter, stop *atomic.Bool) error {
	batch := p.enc.NewBatch(p.cfg.Batch)
	limit := p.cfg.Records
	for i := int64(0); limit == 0 || i < limit; {
		if stop.Load() {
			return nil
		}
		k := int64(batch.Len())
		if limit > 0 {
			k = min(k, limit-i)
		}
		if _, err := rw.EmitAll(ctx, p.enc.Fill(batch, int(k))); err != nil {
			return err
		}
		i += k
		p.emitted.Store(i)
	}
	return nil
}

// emitEach writes records one by one with Emit, paced by cfg.Rate, until
// stop, ctx or cfg.Records.
func (p *Producer) emitEach(ctx context.Context, rw *exchange.RecordWriter, stop *atomic.Bool) error {
	cfg := p.cfg
	var interval time.Duration
	var due time.Time
	var timer *time.Timer
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
		due = time.Now()
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	limit := cfg.Records
	for i := int64(0); limit == 0 || i < limit; i++ {
		if stop.Load() {
			return nil
		}
		if i&255 == 0 {
			p.emitted.Store(i)
		}
		if interval > 0 {
			if d := time.Until(due); d > cfg.PaceQuantum {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			} else if d < -time.Second {
				due = time.Now() // far behind (backpressure): do not burst
			}
			due = due.Add(interval)
		}
		rec, _ := p.enc.Next()
		if err := rw.Emit(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// Finish waits until every consumer acknowledged all records (they do once
// EndOfData arrived on all of their channels), then ends the partition
// with EndOfPartition: Flink's order for a finishing task. A BLOCKING
// partition is finished at once: nothing in it is consumable before
// Finish, so no consumer could ever acknowledge.
func (p *Producer) Finish(ctx context.Context, part *exchange.ResultPartition) error {
	if part.Type() == exchange.Blocking {
		return part.Finish(ctx)
	}
	select {
	case <-part.AllRecordsProcessed():
	case <-ctx.Done():
		return ctx.Err()
	}
	return part.Finish(ctx)
}

// Consumer reads and verifies one input gate.
type Consumer struct {
	gate     *exchange.InputGate
	v        *GateVerifier
	writers  int
	received atomic.Int64
	eod      int
	started  atomic.Bool
	firstAt  atomic.Int64 // UnixNano of the first element
	// Tolerated counts channel failures after the channel was complete.
	Tolerated int
	// LastTolerated is the last such failure.
	LastTolerated error
}

// NewConsumer verifies gate sub (of readers), whose channel i reads
// writer i.
func NewConsumer(gate *exchange.InputGate, sub, writers, readers int, clock *Clock) *Consumer {
	return &Consumer{gate: gate, v: NewGateVerifier(sub, writers, readers, clock), writers: writers}
}

// Started reports whether anything (a hello, a record) has arrived.
func (c *Consumer) Started() bool { return c.started.Load() }

// FirstAt is when the first element arrived (zero time if none).
func (c *Consumer) FirstAt() time.Time {
	if n := c.firstAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Received is the number of records received so far (updated every 256).
func (c *Consumer) Received() int64 { return c.received.Load() }

// Verifier is the consumer's verifier.
func (c *Consumer) Verifier() *GateVerifier { return c.v }

// Stats returns the verification counts (after Run).
func (c *Consumer) Stats() Stats { return c.v.Stats() }

// ChannelFailure is a channel error the consumer could not tolerate.
type ChannelFailure struct {
	Gate int
	Err  *exchange.ChannelError
	// Started: the channel's producer had delivered something before.
	Started bool
}

func (e *ChannelFailure) Error() string {
	return fmt.Sprintf("gate %d: %v", e.Gate, e.Err)
}

func (e *ChannelFailure) Unwrap() error { return e.Err }

// Run reads until every channel ended (nil), a channel fails before its
// producer finished (*ChannelFailure), or ctx ends. It takes the records
// a buffer at a time (InputGate.NextBatch) and verifies every one.
func (c *Consumer) Run(ctx context.Context) error {
	var n, shown int64
	var evErr error
	v := c.v
	handle := func(el exchange.Element) bool {
		if el.Event == nil {
			v.Record(el.Channel, el.Record)
			n++
			return true
		}
		evErr = c.event(el)
		return false
	}
	for {
		v.NewBuffer()
		err := c.gate.NextBatch(ctx, handle)
		if err == nil {
			if evErr != nil {
				return evErr
			}
			if n-shown >= 256 {
				shown = n
				c.received.Store(n)
			}
			if !c.started.Load() {
				c.firstAt.Store(time.Now().UnixNano())
				c.started.Store(true)
			}
			continue
		}
		if err == io.EOF {
			c.received.Store(v.st.Records)
			return nil
		}
		var end *exchange.GateFailedError
		if errors.As(err, &end) {
			// The gate's end after failures: fine if every failed
			// channel had already delivered all it owed.
			for _, ce := range end.Failures {
				if ce.Index < 0 || ce.Index >= len(v.ch) || !v.Done(ce.Index) {
					return &ChannelFailure{Gate: v.sub, Err: ce, Started: ce.Index >= 0 && ce.Index < len(v.ch) && v.ch[ce.Index].hello}
				}
			}
			c.received.Store(v.st.Records)
			return nil
		}
		var ce *exchange.ChannelError
		if errors.As(err, &ce) {
			if ce.Index >= 0 && ce.Index < len(v.ch) && v.Done(ce.Index) {
				c.Tolerated++
				c.LastTolerated = err
				continue
			}
			return &ChannelFailure{Gate: v.sub, Err: ce, Started: v.ch[ce.Index].hello}
		}
		return err
	}
}

// event handles a control element: the producers' hello and final counts
// (UserEvent) and EndOfData.
func (c *Consumer) event(el exchange.Element) error {
	switch ev := el.Event.(type) {
	case exchange.UserEvent:
		return c.v.Event(el.Channel, ev.Payload)
	case exchange.EndOfData:
		c.v.EndOfData(el.Channel)
		if c.eod++; c.eod == c.writers {
			// Every producer may now learn that its records were
			// processed; a failure here only delays the producer's exit,
			// it loses nothing.
			_ = c.gate.AckAllRecordsProcessed()
		}
	}
	return nil
}
