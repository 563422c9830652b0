package exchange

import (
	"errors"
	"fmt"
	"sync"

	"github.com/qexchange/qexchange/exchange/compress"
	"github.com/qexchange/qexchange/exchange/spill"
	"github.com/qexchange/qexchange/exchange/wire"
)

// BLOCKING partitions (docs/architecture.md, "The model"; Flink's
// BoundedBlockingSubpartition over a FileChannelManager). The writer fills
// segments from the partition's small pool as for a pipelined partition,
// but each finished segment and each event goes to the partition's
// spill.Writer and its segment back to the pool at once, so memory is the
// pool plus the spill write buffer, whatever the data size. Finish makes
// the spill file a spill.Partition; only then do partition requests find
// the partition (before, they get PartitionNotFound and retry). Every
// request gets its own reader subpartition over a fresh spill.Reader, so
// any number of consumers read the whole partition, each from the start,
// and again after a failure. Readers fill segments of the same pool,
// which the writer no longer needs: the read memory is bounded too.

// blockingState is the spill side of a BLOCKING ResultPartition.
type blockingState struct {
	w *spill.Writer // nil after Finish or Release

	mu       sync.Mutex
	file     *spill.Partition // set by Finish
	readers  map[*subpartition]struct{}
	released bool
}

// spillManager returns the node's spill.Manager, creating it at the first
// BLOCKING partition so that nodes without one touch no disk; a directory
// that cannot be written fails that partition's creation.
func (e *Environment) spillManager() (*spill.Manager, error) {
	e.spillMu.Lock()
	defer e.spillMu.Unlock()
	if e.spill == nil {
		m, err := spill.NewManager(spill.Config{Dir: e.cfg.SpillDir, Logger: e.log})
		if err != nil {
			return nil, err
		}
		e.spill = m
	}
	return e.spill, nil
}

// closeSpill closes the spill manager (removing its files) at node close.
func (e *Environment) closeSpill() error {
	e.spillMu.Lock()
	defer e.spillMu.Unlock()
	if e.spill == nil {
		return nil
	}
	err := e.spill.Close()
	e.spill = nil
	return err
}

func newBlockingState(env *Environment, id PartitionID, subpartitions int) (*blockingState, error) {
	m, err := env.spillManager()
	if err != nil {
		return nil, err
	}
	w, err := m.NewWriter(id.String(), subpartitions)
	if err != nil {
		return nil, err
	}
	return &blockingState{w: w, readers: make(map[*subpartition]struct{})}, nil
}

// spillSegment appends the finished segment to each reader's subpartition
// in the file (wmu held). A write error fails the partition.
func (p *ResultPartition) spillSegment(seg *segment, subs []subpartition) {
	n := int(seg.pos)
	if n == 0 {
		return
	}
	payload, compressed := p.spillPayload(seg.data[:n])
	for i := range subs {
		if err := p.blocking.w.Append(subs[i].index, spill.Meta{DataType: wire.DataBuffer, Compressed: compressed}, payload); err != nil {
			p.Fail(err)
			return
		}
	}
}

// spillEvent appends an event to every subpartition's file (wmu held).
func (p *ResultPartition) spillEvent(buf Buffer) error {
	defer buf.Release()
	for i := range p.subs {
		if err := p.blocking.w.Append(i, spill.Meta{DataType: buf.DataType}, buf.Bytes()); err != nil {
			p.Fail(err)
			return err
		}
	}
	return nil
}

// finishBlocking turns the spill file into a readable partition (wmu held).
func (p *ResultPartition) finishBlocking() error {
	b := p.blocking
	file, err := b.w.Finish()
	if err != nil {
		p.Fail(err)
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.w = nil
	if b.released {
		return errors.Join(ErrClosed, file.Release())
	}
	b.file = file
	return nil
}

// openBlockingReader is subpartition(i) of a BLOCKING partition: a fresh
// reader subpartition over the spill file, or PartitionNotFound before
// Finish (the consumer retries, as in Flink).
func (p *ResultPartition) openBlockingReader(i int) (*subpartition, error) {
	if err := p.failure(); err != nil {
		return nil, err
	}
	b := p.blocking
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.released {
		return nil, ErrClosed
	}
	if b.file == nil {
		return nil, &PartitionNotFoundError{Partition: p.id}
	}
	r, err := b.file.NewReader(i)
	if err != nil {
		return nil, err
	}
	s := &subpartition{index: i, part: p, spill: &spillRead{r: r}}
	s.spill.owner = s
	b.readers[s] = struct{}{}
	return s, nil
}

// releaseBlocking deletes the spill file and fails the live readers.
func (p *ResultPartition) releaseBlocking() {
	b := p.blocking
	b.mu.Lock()
	b.released = true
	w, file := b.w, b.file
	b.w, b.file = nil, nil
	readers := make([]*subpartition, 0, len(b.readers))
	for s := range b.readers {
		readers = append(readers, s)
	}
	b.mu.Unlock()
	if w != nil {
		w.Abort()
	}
	if file != nil {
		if err := file.Release(); err != nil {
			p.env.log.Warn().Err(err).Str("partition", p.id.String()).Msg("removing spill file")
		}
	}
	for _, s := range readers {
		s.release()
	}
}

func (p *ResultPartition) forgetReader(s *subpartition) {
	b := p.blocking
	b.mu.Lock()
	delete(b.readers, s)
	b.mu.Unlock()
}

// spillRead is the reading state of a reader subpartition of a BLOCKING
// partition (guarded by the subpartition's mu).
type spillRead struct {
	owner     *subpartition
	r         *spill.Reader
	spare     *segment // a read-pool segment taken for the next buffer
	listening bool     // registered with the pool for a segment
	dec       *compress.Decompressor
}

// bufferAvailable implements bufferWant: the pool hands a segment to a
// reader that found it empty.
func (sr *spillRead) bufferAvailable(b Buffer) (accepted, needMore bool) {
	s := sr.owner
	s.mu.Lock()
	sr.listening = false
	if s.released || sr.spare != nil {
		s.mu.Unlock()
		return false, false
	}
	sr.spare = b.seg
	l := s.listener
	s.mu.Unlock()
	if l != nil {
		l()
	}
	return true, false
}

// segmentLocked makes sure a segment is at hand for the next buffer,
// registering with the pool when none is free (s.mu held).
func (sr *spillRead) segmentLocked(pool *LocalBufferPool) bool {
	if sr.spare != nil {
		return true
	}
	if sr.listening {
		return false
	}
	b, ok := pool.requestOrListen(sr)
	if ok {
		sr.spare = b.seg
		return true
	}
	sr.listening = true
	return false
}

// sendableLocked: the next buffer may go now (s.mu held).
func (s *subpartition) spillSendableLocked(credit bool) bool {
	if s.blocked || s.released {
		return false
	}
	_, isEvent, ok := s.spill.r.Peek()
	if !ok || (!isEvent && !credit) {
		return false
	}
	return s.spill.segmentLocked(s.part.pool)
}

// spillPollLocked is poll for a reader subpartition (s.mu held).
func (s *subpartition) spillPollLocked(allowData bool) pollResult {
	sr := s.spill
	if !s.spillSendableLocked(allowData) {
		return pollResult{backlog: sr.r.Backlog(), dataQueued: s.spillDataQueuedLocked()}
	}
	seg := sr.spare
	n, meta, err := sr.r.Next(seg.data)
	if err != nil {
		// The file is gone (released) or damaged: for every reader.
		if !errors.Is(err, spill.ErrReleased) {
			go s.part.Fail(fmt.Errorf("partition %s subpartition %d: %w", s.part.id, s.index, err))
		}
		return pollResult{backlog: sr.r.Backlog()}
	}
	sr.spare = nil
	buf := bufferOf(seg, 0, n, meta.DataType)
	if meta.Compressed {
		buf.Compressed = true
		if !s.network {
			if buf, err = s.decompressLocked(buf); err != nil {
				sr.spare = seg
				go s.part.Fail(fmt.Errorf("partition %s subpartition %d: %w", s.part.id, s.index, err))
				return pollResult{backlog: sr.r.Backlog()}
			}
		}
	}
	switch meta.DataType {
	case wire.AlignedBarrier:
		s.blocked = true
	case wire.EventBuffer:
		if isEndOfPartition(buf) {
			s.consumed = true
		}
	}
	if !meta.DataType.IsEvent() {
		s.part.countOut(n)
	}
	return pollResult{buf: buf, ok: true, backlog: sr.r.Backlog(), dataQueued: s.spillDataQueuedLocked()}
}

func (s *subpartition) spillDataQueuedLocked() bool {
	return !s.blocked && !s.released && s.spill.r.Backlog() > 0
}

// spillReleaseLocked returns the reader's segment and forgets it (s.mu
// held, s.released just set).
func (s *subpartition) spillReleaseLocked() (spare *segment, listening bool) {
	sr := s.spill
	sr.r.Close()
	spare, sr.spare = sr.spare, nil
	listening, sr.listening = sr.listening, false
	return spare, listening
}

// releaseSpillReader ends a reader subpartition (s.mu held, released just
// set; unlocks): its segment goes back to the pool, the partition forgets
// it, and a view still attached learns that it is over.
func (s *subpartition) releaseSpillReader() {
	spare, listening := s.spillReleaseLocked()
	l := s.listener
	s.listener = nil
	s.mu.Unlock()
	if listening {
		s.part.pool.removeListener(s.spill)
	}
	if spare != nil {
		Buffer{seg: spare}.Release()
	}
	s.part.forgetReader(s)
	if l != nil {
		l()
	}
}

// notifyReaders wakes the readers of a BLOCKING partition (after Fail).
func (p *ResultPartition) notifyReaders() {
	b := p.blocking
	b.mu.Lock()
	readers := make([]*subpartition, 0, len(b.readers))
	for s := range b.readers {
		readers = append(readers, s)
	}
	b.mu.Unlock()
	for _, s := range readers {
		s.mu.Lock()
		l := s.listener
		s.mu.Unlock()
		if l != nil {
			l()
		}
	}
}

// SpilledBytes is the size of a finished BLOCKING partition's file (0
// for other partitions, and before Finish or after Release).
func (p *ResultPartition) SpilledBytes() int64 {
	if p.blocking == nil {
		return 0
	}
	p.blocking.mu.Lock()
	defer p.blocking.mu.Unlock()
	if p.blocking.file == nil {
		return 0
	}
	return p.blocking.file.Size()
}
