package exchange

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qexchange/qexchange/exchange/compress"
)

// PartitionType describes how a partition may be consumed (Flink's
// ResultPartitionType). PipelinedBounded and Blocking are implemented.
type PartitionType struct {
	// Pipelined: consumable while it is produced.
	Pipelined bool
	// Bounded: uses a fixed buffer pool, so a slow consumer backpressures
	// the producer.
	Bounded bool
	// Blocking: fully produced before consumption and re-consumable.
	Blocking bool
}

// The partition types of docs/architecture.md ("model"). PipelinedBounded is the default.
var (
	PipelinedBounded = PartitionType{Pipelined: true, Bounded: true}
	Pipelined        = PartitionType{Pipelined: true}
	Blocking         = PartitionType{Blocking: true, Bounded: true}
)

func (t PartitionType) String() string {
	switch t {
	case PipelinedBounded:
		return "PIPELINED_BOUNDED"
	case Pipelined:
		return "PIPELINED"
	case Blocking:
		return "BLOCKING"
	}
	return fmt.Sprintf("PartitionType%+v", struct{ P, B, K bool }{t.Pipelined, t.Bounded, t.Blocking})
}

// Buffer timeout settings (Flink's execution.buffer-timeout).
const (
	// DefaultBufferTimeout applies when PartitionConfig.BufferTimeout is 0.
	DefaultBufferTimeout = 100 * time.Millisecond
	// FlushEveryRecord makes every record available at once (Flink's 0).
	FlushEveryRecord time.Duration = -2
	// FlushFullBuffersOnly sends only full buffers (Flink's -1), plus
	// explicit Flush calls and the end of the partition.
	FlushFullBuffersOnly time.Duration = -1
)

// PartitionConfig describes a ResultPartition. Zero values mean the
// documented defaults.
type PartitionConfig struct {
	// ID identifies the partition; zero means a random id.
	ID PartitionID
	// Subpartitions is the number of consumers (required, >= 1).
	Subpartitions int
	// Type defaults to PipelinedBounded. Blocking spills to files under
	// Config.SpillDir and is consumable after Finish, by any number of
	// consumers, until Release (BufferTimeout does not apply).
	Type PartitionType
	// BufferTimeout: 0 = DefaultBufferTimeout (100 ms); d > 0 flushes
	// partially filled buffers every d; FlushEveryRecord;
	// FlushFullBuffersOnly.
	BufferTimeout time.Duration
	// MinBuffers defaults to Subpartitions + 1 and MaxBuffers to
	// 2*Subpartitions + 8, as in Flink.
	MinBuffers, MaxBuffers int
	// Compression: CompressionDefault is LZ4 for Blocking (stored
	// compressed on disk) and none for pipelined partitions.
	Compression Compression
	// OnTaskEvent receives task events sent by consumers
	// (InputGate.SendTaskEvent). It must not block. Optional.
	OnTaskEvent func(subpartition int, event []byte)
}

// ResultPartition is the output of one producer task: Subpartitions
// queues, one per consumer, filled through a RecordWriter. Records
// (EmitTo, BroadcastRecord and the RecordWriter's methods) are for one
// goroutine at a time: a record appended to an open buffer takes no lock
// (docs/architecture.md, "The writer's fast path"), so two goroutines
// writing records at once would corrupt them. Events (BroadcastEvent,
// EndOfData), Finish, Flush, Fail and Release may come from any
// goroutine: they keep the record writer out while they run.
type ResultPartition struct {
	id      PartitionID
	typ     PartitionType
	env     *Environment
	pool    *LocalBufferPool
	subs    []subpartition
	timeout time.Duration
	onEvent func(int, []byte)

	// gate lets the writer append a record that fits its open segment
	// with no lock (writergate.go); every other record holds wmu.
	// Flushes, which publish the writer's positions (segment.pos) to
	// readers, events and Finish, which may come from other goroutines,
	// and Release, which returns the writer's open segments, hold wmu and
	// close the gate (lockWriter). A writer waiting for buffers does not
	// hold wmu.
	gate writerGate
	wmu  sync.Mutex
	// Writer state: the open segment of each subpartition, or of all of
	// them for broadcast records (shared, reference counted).
	current   []*segment
	broadcast *segment
	maxRecord int
	finished  bool

	// blocking is the spill side of a BLOCKING partition (blocking.go).
	blocking *blockingState
	// Compression (compression.go): resolved codec; the spilling
	// writer's Compressor and scratch (wmu); Compressors for views.
	compression     Compression
	spillCompressor *compress.Compressor
	spillScratch    []byte
	compressors     sync.Pool
	compStats       compressionCounters

	failed   atomic.Pointer[error]
	released atomic.Bool

	// Data handed to readers, for metrics (counted only when metered).
	created              time.Time
	metered              bool
	bytesOut, buffersOut atomic.Int64
	allAcked             chan struct{}
	delivery             deliveryState // acknowledgements and readers' ends (shutdown.go)
	releasedCh           chan struct{} // closed by Release
	stopFlusher          chan struct{}
	flusherDone          chan struct{}
	releaseOnce          sync.Once
}

func newResultPartition(env *Environment, cfg PartitionConfig) (*ResultPartition, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pool, err := env.pool.CreateLocalPool("partition "+cfg.ID.String(), cfg.MinBuffers, cfg.MaxBuffers)
	if err != nil {
		return nil, err
	}
	p := &ResultPartition{
		id:          cfg.ID,
		typ:         cfg.Type,
		env:         env,
		pool:        pool,
		subs:        make([]subpartition, cfg.Subpartitions),
		timeout:     cfg.BufferTimeout,
		onEvent:     cfg.OnTaskEvent,
		current:     make([]*segment, cfg.Subpartitions),
		maxRecord:   env.cfg.MaxRecordSize,
		compression: cfg.Compression.resolve(cfg.Type),
		allAcked:    make(chan struct{}),
		releasedCh:  make(chan struct{}),
		metered:     env.metrics != nil,
		created:     time.Now(),
	}
	for i := range p.subs {
		p.subs[i].index = i
		p.subs[i].part = p
	}
	if p.timeout == FlushEveryRecord || !env.fastPath {
		// Every record takes the locked path: to be flushed, or for want
		// of membarrier.
		p.gate.shut()
	}
	if cfg.Type == Blocking {
		if p.blocking, err = newBlockingState(env, cfg.ID, cfg.Subpartitions); err != nil {
			pool.Destroy()
			return nil, err
		}
		p.timeout = FlushFullBuffersOnly // only whole segments go to disk
	}
	if p.timeout > 0 {
		p.stopFlusher = make(chan struct{})
		p.flusherDone = make(chan struct{})
		go p.flushLoop()
	}
	return p, nil
}

// countOut counts a data buffer of n bytes handed to a reader. Per
// buffer, never per record; nothing at all without metrics.
func (p *ResultPartition) countOut(n int) {
	if p.metered {
		p.bytesOut.Add(int64(n))
		p.buffersOut.Add(1)
	}
}

// ID is the partition's id.
func (p *ResultPartition) ID() PartitionID { return p.id }

// Type is the partition's type.
func (p *ResultPartition) Type() PartitionType { return p.typ }

// Subpartitions is the number of subpartitions.
func (p *ResultPartition) Subpartitions() int { return len(p.subs) }

// BufferPool is the partition's share of network memory.
func (p *ResultPartition) BufferPool() *LocalBufferPool { return p.pool }

// flushLoop is Flink's OutputFlusher, with its ticks aligned on the
// wall clock: every partition of the process that has the same timeout
// flushes at the same instants, so the buffers of all channels become
// ready together and a transport can send them in shared, full packets
// instead of one small packet per channel at a random phase
// (docs/architecture.md, "Flushing").
func (p *ResultPartition) flushLoop() {
	defer close(p.flusherDone)
	t := time.NewTimer(time.Until(nextFlushTick(time.Now(), p.timeout)))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.Flush()
			t.Reset(time.Until(nextFlushTick(time.Now(), p.timeout)))
		case <-p.stopFlusher:
			return
		}
	}
}

// nextFlushTick is the first multiple of every (counted from the zero
// time) strictly after now. Computing it afresh each round keeps the grid
// when a flush runs late, instead of drifting as a restarted timer would.
func nextFlushTick(now time.Time, every time.Duration) time.Time {
	return now.Truncate(every).Add(every)
}

func (p *ResultPartition) checkWritable() error {
	// Released first: after Release every write is ErrClosed, whatever
	// failed before it.
	if p.released.Load() {
		return ErrClosed
	}
	if e := p.failed.Load(); e != nil {
		return *e
	}
	if p.finished {
		return ErrFinished
	}
	return nil
}

// EmitTo appends record to subpartition sub. It blocks while the
// partition's buffers are all in use (backpressure) until ctx is done. If
// ctx ends after part of a record that spans buffers was written, that
// part cannot be taken back: the partition fails with the error, which
// its consumers get instead of a cut record.
func (p *ResultPartition) EmitTo(ctx context.Context, sub int, record []byte) error {
	if uint(sub) >= uint(len(p.subs)) {
		return fmt.Errorf("%w: subpartition %d of %d", ErrSubpartitionOutOfRange, sub, len(p.subs))
	}
	if p.appendFast(sub, record) {
		return nil
	}
	return p.emitLocked(ctx, sub, record)
}

// emitLocked is emitSlow with wmu taken.
func (p *ResultPartition) emitLocked(ctx context.Context, sub int, record []byte) error {
	p.wmu.Lock()
	err := p.emitSlow(ctx, sub, record)
	p.wmu.Unlock()
	return err
}

// appendFast is the per-record fast path, without wmu: the record and
// its length fit in sub's open segment without filling it, and the gate
// is open (the partition takes records and nothing is flushing). Nothing
// is published: the bytes become readable when the segment fills or a
// flush publishes seg.pos. False leaves everything to emitSlow. EmitTo
// calls it; Emit and EmitAll write the same steps out, so that their
// per-record path makes no call (docs/architecture.md, "The writer's fast
// path").
func (p *ResultPartition) appendFast(sub int, record []byte) bool {
	if len(record) > p.maxRecord || !p.gate.enter() {
		return false
	}
	// In the gate: Release clears p.current only with it closed.
	seg := p.current[sub]
	end, ok := 0, false
	if seg != nil {
		end, ok = seg.fits(record)
	}
	if ok {
		seg.putRecord(end, record)
	}
	p.gate.leave()
	return ok
}

// lockWriter keeps the writer out, fast path included, so that its
// state (open segments and their positions) can be read or changed from
// another goroutine.
func (p *ResultPartition) lockWriter() {
	p.wmu.Lock()
	p.gate.close()
}

func (p *ResultPartition) unlockWriter() {
	p.gate.reopen()
	p.wmu.Unlock()
}

// flushOne publishes sub's open segment and flushes it (wmu held, by the
// writer: its fast path is shut when it flushes every record).
func (p *ResultPartition) flushOne(sub int) {
	p.current[sub].publish()
	p.subs[sub].flushPublished()
}

// broadcastAll is RecordWriter.EmitAll for a broadcast selector.
func (p *ResultPartition) broadcastAll(ctx context.Context, records [][]byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for i, record := range records {
		if err := p.broadcastLocked(ctx, record); err != nil {
			return i, err
		}
	}
	return len(records), nil
}

// emitSlow is EmitTo when the record needs a new segment, fills the open
// one, or is refused (wmu held).
func (p *ResultPartition) emitSlow(ctx context.Context, sub int, record []byte) error {
	if err := p.checkRecord(record); err != nil {
		return err
	}
	if err := p.write(ctx, &p.current[sub], p.subs[sub:sub+1], record); err != nil {
		return err
	}
	if p.timeout == FlushEveryRecord {
		p.flushOne(sub)
	}
	return nil
}

// BroadcastRecord appends one copy of record that every subpartition
// reads (the segment is shared, not copied per subpartition).
func (p *ResultPartition) BroadcastRecord(ctx context.Context, record []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.broadcastLocked(ctx, record)
}

func (p *ResultPartition) broadcastLocked(ctx context.Context, record []byte) error {
	if err := p.checkRecord(record); err != nil {
		return err
	}
	// Unicast and broadcast records must not interleave inside segments
	// with different readers: finish the per-subpartition ones first.
	p.finishUnicast()
	if err := p.write(ctx, &p.broadcast, p.subs, record); err != nil {
		return err
	}
	if p.timeout == FlushEveryRecord {
		p.broadcast.publish()
		p.flushSubpartitions()
	}
	return nil
}

func (p *ResultPartition) checkRecord(record []byte) error {
	if err := p.checkWritable(); err != nil {
		return err
	}
	if len(record) > p.maxRecord {
		return fmt.Errorf("%w: %d bytes, MaxRecordSize is %d", ErrRecordTooLarge, len(record), p.maxRecord)
	}
	return nil
}

// write serialises a length-prefixed record into *cur, spanning as many
// segments as it needs; subs are the readers of those segments.
func (p *ResultPartition) write(ctx context.Context, cur **segment, subs []subpartition, record []byte) error {
	// The record and its length fit in the open segment.
	if seg := *cur; seg != nil {
		w := int(seg.pos)
		if end := w + 4 + len(record); end <= int(seg.limit) {
			binary.BigEndian.PutUint32(seg.data[w:], uint32(len(record)))
			copy(seg.data[w+4:end], record)
			seg.pos = int32(end)
			if end == int(seg.limit) {
				p.finishSegment(cur, subs)
			}
			return nil
		}
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(record)))
	n, err := p.writeBytes(ctx, cur, subs, hdr[:])
	if err == nil {
		var m int
		m, err = p.writeBytes(ctx, cur, subs, record)
		n += m
	}
	if err != nil && n > 0 {
		// Part of the record is in the segments, some of it perhaps sent
		// already: it cannot be taken back, and a consumer would read it
		// as a record cut by whatever comes next. The partition fails
		// instead, so its consumers get this error, not a cut record.
		err = fmt.Errorf("exchange: partition %s: record cut after %d of %d bytes, partition failed: %w", p.id, n, 4+len(record), err)
		p.failWriting(err)
	}
	return err
}

// failWriting is Fail for the writer (wmu held): the flusher, which takes
// wmu, is left to stop at Release instead of being waited for here.
func (p *ResultPartition) failWriting(err error) {
	p.failed.CompareAndSwap(nil, &err)
	p.gate.shut()
	p.notifyListeners()
}

func (p *ResultPartition) writeBytes(ctx context.Context, cur **segment, subs []subpartition, b []byte) (written int, err error) {
	for len(b) > 0 {
		seg := *cur
		if seg == nil {
			if seg, err = p.newSegment(ctx, subs); err != nil {
				return written, err
			}
			*cur = seg
		}
		w := int(seg.pos)
		n := copy(seg.data[w:seg.limit], b)
		b = b[n:]
		written += n
		seg.pos = int32(w + n)
		if w+n == int(seg.limit) {
			p.finishSegment(cur, subs)
		}
	}
	return written, nil
}

// newSegment takes a segment from the pool (waiting for one: this is the
// backpressure) and queues it in every subpartition in subs. Called with
// wmu held; a wait lets go of it, so that the flusher can publish the
// partially filled segments the readers need to free buffers, and
// Release can return them.
func (p *ResultPartition) newSegment(ctx context.Context, subs []subpartition) (*segment, error) {
	// Checked once per segment, not per record: a writer whose readers are
	// gone never waits for buffers, and must still see cancellation.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	seg := p.pool.requestSegment()
	if seg == nil {
		p.wmu.Unlock()
		var err error
		seg, err = p.pool.requestSegmentWait(ctx)
		p.wmu.Lock()
		if err != nil {
			if err == ErrClosed {
				if e := p.checkWritable(); e != nil {
					return nil, e
				}
			}
			return nil, err
		}
	}
	seg.pos = 0
	seg.limit = int32(len(seg.data))
	if p.blocking != nil {
		return seg, nil // spilled when finished, never queued
	}
	if len(subs) == 1 {
		seg.limit = subs[0].cutSize(seg.limit)
	}
	// One reference for the writer, one per subpartition queue.
	seg.refs.Store(int32(1 + len(subs)))
	for i := range subs {
		if !subs[i].pushSegment(seg, len(subs) > 1) {
			Buffer{seg: seg}.Release()
		}
	}
	if err := p.checkWritable(); err != nil {
		Buffer{seg: seg}.Release()
		return nil, err
	}
	return seg, nil
}

// finishSegment closes the writer's segment *cur and tells its readers.
func (p *ResultPartition) finishSegment(cur **segment, subs []subpartition) {
	seg := *cur
	*cur = nil
	if p.blocking != nil {
		p.spillSegment(seg, subs)
		Buffer{seg: seg}.Release()
		return
	}
	seg.publish()
	seg.finished.Store(true)
	for i := range subs {
		subs[i].segmentFinished()
	}
	Buffer{seg: seg}.Release() // the writer's reference
}

func (p *ResultPartition) finishUnicast() {
	for i := range p.current {
		if p.current[i] != nil {
			p.finishSegment(&p.current[i], p.subs[i:i+1])
		}
	}
}

func (p *ResultPartition) finishAll() {
	p.finishUnicast()
	if p.broadcast != nil {
		p.finishSegment(&p.broadcast, p.subs)
	}
}

// Flush makes every partially filled buffer available to its reader.
// Safe to call from any goroutine, also while the writer is idle: it
// publishes the writer's positions with the writer kept out
// (lockWriter), which waits at most for the record being appended, never
// for a writer waiting for buffers.
func (p *ResultPartition) Flush() {
	p.lockWriter()
	p.publishOpen()
	p.unlockWriter()
	p.flushSubpartitions()
}

// publishOpen publishes the writer's open segments (lockWriter): one pass
// over the subpartitions, as flushSubpartitions makes anyway.
func (p *ResultPartition) publishOpen() {
	for _, seg := range p.current {
		seg.publish()
	}
	p.broadcast.publish()
}

// flushSubpartitions flushes what has been published (see publishOpen).
func (p *ResultPartition) flushSubpartitions() {
	for i := range p.subs {
		p.subs[i].flushPublished()
	}
}

// FlushSubpartition makes sub's partially filled buffer available.
func (p *ResultPartition) FlushSubpartition(sub int) error {
	if uint(sub) >= uint(len(p.subs)) {
		return fmt.Errorf("%w: subpartition %d of %d", ErrSubpartitionOutOfRange, sub, len(p.subs))
	}
	p.subs[sub].flush()
	return nil
}

// BroadcastEvent sends ev to every subpartition, in order with the records
// before it (priority events overtake queued data).
func (p *ResultPartition) BroadcastEvent(ctx context.Context, ev Event) error {
	p.lockWriter() // may come from another goroutine than the records
	defer p.unlockWriter()
	if err := p.checkWritable(); err != nil {
		return err
	}
	if ev == nil {
		return configError("event", nil, "must not be nil")
	}
	if _, ok := ev.(EndOfPartition); ok {
		return configError("event", "EndOfPartition", "use Finish")
	}
	return p.broadcastEvent(ev)
}

func (p *ResultPartition) broadcastEvent(ev Event) error {
	if !ev.dataType().IsPriority() {
		// Records emitted before the event must be read before it.
		p.finishAll()
	}
	buf := encodeEvent(ev)
	if p.blocking != nil {
		return p.spillEvent(buf)
	}
	for i := range p.subs {
		if !p.subs[i].pushEvent(buf.Retain()) {
			buf.Release()
		}
	}
	buf.Release()
	return nil
}

// EndOfData tells consumers that no more records follow; each consumer
// acknowledges once it has processed all of them (see
// WaitAllRecordsProcessed). As in Flink, call Finish only after that: a
// consumer releases a channel when it reads EndOfPartition, and an
// acknowledgement can no longer be sent on a released channel.
func (p *ResultPartition) EndOfData(ctx context.Context) error {
	p.lockWriter() // may come from another goroutine than the records
	defer p.unlockWriter()
	if err := p.checkWritable(); err != nil {
		return err
	}
	return p.broadcastEvent(EndOfData{})
}

// AllRecordsProcessed is closed when every subpartition's consumer has
// acknowledged all records after EndOfData, or as soon as a consumer went
// away before acknowledging: WaitAllRecordsProcessed says which.
func (p *ResultPartition) AllRecordsProcessed() <-chan struct{} { return p.allAcked }

// WaitAllRecordsProcessed waits until every subpartition's consumer has
// acknowledged all records after EndOfData. A consumer that goes away
// first (its channel cancelled, its connection lost) ends the wait at
// once with a *ConsumerLostError naming it (errors.Is ErrConsumerLost); a
// released partition returns ErrClosed, and ctx's end its error.
func (p *ResultPartition) WaitAllRecordsProcessed(ctx context.Context) error {
	select {
	case <-p.allAcked:
		return p.delivery.ackResult()
	case <-p.releasedCh:
		select {
		case <-p.allAcked:
			return p.delivery.ackResult()
		default:
		}
		return fmt.Errorf("%w: partition %s released while waiting for its consumers' acknowledgements", ErrClosed, p.id)
	case <-ctx.Done():
		return fmt.Errorf("exchange: partition %s: waiting for its consumers' acknowledgements: %w", p.id, context.Cause(ctx))
	}
}

func (p *ResultPartition) ackAllRecordsProcessed(sub int) {
	s := &p.subs[sub]
	s.mu.Lock()
	already := s.ackedAll
	s.ackedAll = true
	s.mu.Unlock()
	if !already {
		p.delivery.acked(p)
	}
}

// Finish flushes everything and ends every subpartition with
// EndOfPartition. No record may be written after it.
//
// The one sequence that delivers every record and tells the producer so
// (docs/architecture.md, "Shutdown"):
//
//	part.EndOfData(ctx)               // no more records
//	part.WaitAllRecordsProcessed(ctx) // every consumer processed them
//	part.Finish(ctx)                  // EndOfPartition
//	env.Shutdown(ctx)                 // waits until consumers took it, then closes
//
// Finish returns a *ConsumerLostError (errors.Is ErrConsumerLost) naming
// the consumer whose subpartition was released before Finish, having
// still finished the others: the records written for it were dropped.
func (p *ResultPartition) Finish(ctx context.Context) error {
	if err := p.checkWritable(); err != nil {
		return err
	}
	// Stopped before taking wmu: a flush in progress waits for wmu.
	p.stopFlush()
	p.lockWriter()
	defer p.unlockWriter()
	if err := p.checkWritable(); err != nil {
		return err
	}
	err := p.broadcastEvent(EndOfPartition{})
	p.finished = true
	p.gate.shut()
	if err == nil && p.blocking != nil {
		err = p.finishBlocking()
	}
	if err == nil {
		err = p.delivery.lostError()
	}
	return err
}

// Fail ends the partition with err: its consumers get it as a remote
// error, and writers get it from their next call.
func (p *ResultPartition) Fail(err error) {
	if err == nil {
		err = fmt.Errorf("exchange: partition %s failed", p.id)
	}
	p.failed.CompareAndSwap(nil, &err)
	p.gate.shut()
	p.stopFlush()
	p.notifyListeners()
}

// notifyListeners wakes every reader, so that it sees a failure.
func (p *ResultPartition) notifyListeners() {
	for i := range p.subs {
		s := &p.subs[i]
		s.mu.Lock()
		l := s.listener
		s.mu.Unlock()
		if l != nil {
			l()
		}
	}
	if p.blocking != nil {
		p.notifyReaders()
	}
}

func (p *ResultPartition) failure() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *ResultPartition) stopFlush() {
	if p.stopFlusher != nil {
		select {
		case <-p.stopFlusher:
		default:
			close(p.stopFlusher)
		}
		<-p.flusherDone
	}
}

// Release drops all queued data, unregisters the partition and returns its
// memory. Writers blocked on buffers return ErrClosed.
func (p *ResultPartition) Release() {
	p.releaseOnce.Do(func() {
		p.released.Store(true)
		p.gate.shut()
		close(p.releasedCh)
		p.stopFlush()
		p.env.partitions.unregister(p)
		p.env.partitionReleased(p)
		// Destroying the pool first wakes a writer blocked on buffers, so
		// it lets go of wmu.
		p.pool.Destroy()
		for i := range p.subs {
			p.subs[i].release()
		}
		if p.blocking != nil {
			p.releaseBlocking()
		}
		p.lockWriter()
		p.releaseWriterSegments()
		p.unlockWriter()
	})
}

// releaseWriterSegments returns the writer's open segments (lockWriter).
func (p *ResultPartition) releaseWriterSegments() {
	for i, s := range p.current {
		if s != nil {
			p.current[i] = nil
			Buffer{seg: s}.Release()
		}
	}
	if p.broadcast != nil {
		Buffer{seg: p.broadcast}.Release()
		p.broadcast = nil
	}
}

// subpartition is what a reader (view or local channel) attaches to: the
// queue itself, or for a BLOCKING partition a fresh reader of its file.
func (p *ResultPartition) subpartition(i int) (*subpartition, error) {
	if uint(i) >= uint(len(p.subs)) {
		return nil, fmt.Errorf("%w: subpartition %d of %d", ErrSubpartitionOutOfRange, i, len(p.subs))
	}
	if p.blocking != nil {
		return p.openBlockingReader(i)
	}
	return &p.subs[i], nil
}
