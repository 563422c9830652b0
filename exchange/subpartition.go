package exchange

import (
	"sync"
	"sync/atomic"

	"github.com/qexchange/qexchange/exchange/wire"
)

// queued is one entry of a subpartition's queue: a data segment that the
// writer may still be filling (read from readPos on), or an event.
type queued struct {
	seg      *segment
	shared   bool // a broadcast segment, read by every subpartition
	readPos  int
	event    Buffer // set for events
	isEvent  bool
	priority bool
}

// subpartition is one pipelined, bounded subpartition (Flink's
// PipelinedSubpartition). The writer appends into the last segment without
// the lock and publishes progress through segment.written; the lock guards
// the queue and flags.
type subpartition struct {
	index int
	part  *ResultPartition

	mu             sync.Mutex
	queue          ring[queued] // FIFO; priority events are kept at the front
	backlog        int          // finished data segments in the queue
	flushRequested bool
	blocked        bool // after an aligned barrier, until resumed
	released       bool
	consumed       bool // EndOfPartition has been taken by the reader
	hasView        bool
	listener       func()
	ackedAll       bool

	// Delivery (shutdown.go): the reader's address ("" for a local
	// reader), whether it went away before taking EndOfPartition, and the
	// buffers that loss dropped.
	reader  string
	lost    bool
	dropped int

	// spill is set for a reader of a BLOCKING partition (blocking.go):
	// one per partition request, reading the spill file, with no queue.
	spill *spillRead
	// network: read by a view, which sends compressed buffers as they
	// are (compression.go); local readers get plain records.
	network bool
	// bufferSize is the size its consumer announced (NewBufferSize,
	// debloat.go); 0: whole segments.
	bufferSize atomic.Int32
}

func (s *subpartition) len() int { return s.queue.len() }

func (s *subpartition) front() *queued { return s.queue.front() }

func (s *subpartition) popFront() { s.queue.popFront() }

// pushSegment queues a fresh data segment (called by the writer).
func (s *subpartition) pushSegment(seg *segment, shared bool) bool {
	s.mu.Lock()
	if s.released {
		s.countDroppedLocked(1)
		s.mu.Unlock()
		return false
	}
	s.queue.pushBack(queued{seg: seg, shared: shared})
	s.mu.Unlock()
	return true
}

// segmentFinished counts the writer's segment, just finished, as backlog
// and wakes the reader.
func (s *subpartition) segmentFinished() {
	s.mu.Lock()
	s.backlog++
	// The segment was the last data in the queue, so a flush request can
	// only have been for its bytes, which now go out with it. Left set,
	// the request outlived it: once the reader had taken the segment and
	// whatever followed (say an event), available() said nothing was
	// there, while flushPublished skipped waking the reader for the
	// writer's next segment ("already requested"), whose data was then
	// never read.
	s.flushRequested = false
	notify := s.listener != nil && !s.blocked
	l := s.listener
	s.mu.Unlock()
	if notify {
		l()
	}
}

// pushEvent queues an event; priority events go ahead of queued data.
func (s *subpartition) pushEvent(ev Buffer) bool {
	s.mu.Lock()
	if s.released {
		s.countDroppedLocked(1)
		s.mu.Unlock()
		return false
	}
	e := queued{event: ev, isEvent: true, priority: ev.DataType.IsPriority()}
	if !e.priority {
		s.queue.pushBack(e)
	} else {
		// After the priority events already at the front, before the rest.
		k := 0
		for k < s.queue.len() && s.queue.at(k).priority {
			k++
		}
		s.queue.insert(k, e)
	}
	notify := s.listener != nil && (!s.blocked || e.priority)
	l := s.listener
	s.mu.Unlock()
	if notify {
		l()
	}
	return true
}

// flush makes the writer's partially filled segment readable: it
// publishes the writer's position (with the writer kept out, so wmu must
// not be held) and then flushes.
func (s *subpartition) flush() {
	p := s.part
	p.lockWriter()
	p.current[s.index].publish()
	p.broadcast.publish()
	p.unlockWriter()
	s.flushPublished()
}

// flushPublished makes what the writer has published of its partially
// filled segment readable (and wakes the reader if that is news).
func (s *subpartition) flushPublished() {
	s.mu.Lock()
	if s.released || s.len() == 0 {
		s.mu.Unlock()
		return
	}
	last := s.queue.back()
	if last.isEvent || last.seg.finished.Load() || int(last.seg.written.Load()) == last.readPos {
		s.mu.Unlock()
		return
	}
	if s.flushRequested {
		s.mu.Unlock()
		return
	}
	s.flushRequested = true
	notify := s.listener != nil && !s.blocked
	l := s.listener
	s.mu.Unlock()
	if notify {
		l()
	}
}

// pollResult is what a reader takes from the subpartition.
type pollResult struct {
	buf     Buffer
	ok      bool
	backlog int
	// more: something else is sendable right after this (given credit).
	dataQueued bool
}

// poll takes the next buffer. allowData=false (no credit) lets only
// events through.
func (s *subpartition) poll(allowData bool) pollResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spill != nil {
		return s.spillPollLocked(allowData)
	}
	for !s.blocked && !s.released && s.len() > 0 {
		e := s.front()
		if e.isEvent {
			ev := e.event
			s.popFront()
			switch ev.DataType {
			case wire.AlignedBarrier:
				s.blocked = true
			case wire.EventBuffer:
				if isEndOfPartition(ev) {
					s.consumed = true
				}
			}
			return pollResult{buf: ev, ok: true, backlog: s.backlogLocked(), dataQueued: s.dataQueuedLocked()}
		}
		if !allowData {
			break
		}
		seg, shared := e.seg, e.shared
		finished := seg.finished.Load() // before written: see segment
		w := int(seg.written.Load())
		if finished {
			pos := e.readPos
			s.popFront()
			s.backlog--
			if pos == w {
				Buffer{seg: seg}.Release() // all of it went out in flushes
				continue
			}
			// The queue's reference goes with the last slice.
			s.part.countOut(w - pos)
			return pollResult{buf: s.forReader(bufferOf(seg, pos, w-pos, wire.DataBuffer), shared), ok: true, backlog: s.backlogLocked(), dataQueued: s.dataQueuedLocked()}
		}
		if s.flushRequested && w > e.readPos {
			pos := e.readPos
			e.readPos = w
			s.flushRequested = false
			seg.refs.Add(1)
			s.part.countOut(w - pos)
			return pollResult{buf: s.forReader(bufferOf(seg, pos, w-pos, wire.DataBuffer), shared), ok: true, backlog: s.backlogLocked(), dataQueued: s.dataQueuedLocked()}
		}
		// A flush request with nothing left to take here (its data went
		// out with the segment finished before this one) is done: left
		// set, it would make the next flush skip notifying the reader,
		// and what that flush published would wait for the segment to
		// fill.
		s.flushRequested = false
		break
	}
	return pollResult{backlog: s.backlogLocked(), dataQueued: s.dataQueuedLocked()}
}

// dataQueuedLocked: a data buffer could be sent now given credit.
func (s *subpartition) dataQueuedLocked() bool {
	if s.blocked || s.released {
		return false
	}
	return s.backlog > 0 || s.flushRequested
}

// available reports whether poll(credit > 0) would return something.
func (s *subpartition) available(credit bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spill != nil {
		return s.spillSendableLocked(credit)
	}
	if s.blocked || s.released || s.len() == 0 {
		return false
	}
	if s.front().isEvent {
		return true
	}
	return credit && (s.backlog > 0 || s.flushRequested)
}

func (s *subpartition) backlogNow() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spill != nil {
		return s.spill.r.Backlog()
	}
	return s.backlogLocked()
}

// backlogLocked is the backlog to report. The counter can be -1 for a
// moment: finishSegment marks a segment finished before segmentFinished
// counts it, and poll may take (and uncount) it in between. Reported as
// 0, which is what remains; on the wire a negative backlog is invalid.
func (s *subpartition) backlogLocked() int { return max(s.backlog, 0) }

// resume unblocks after an aligned barrier.
func (s *subpartition) resume() {
	s.mu.Lock()
	was := s.blocked
	s.blocked = false
	l := s.listener
	s.mu.Unlock()
	if was && l != nil {
		l()
	}
}

// attach registers the single consumer of the subpartition.
func (s *subpartition) attach(listener func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return ErrClosed
	}
	if s.hasView {
		return ErrAlreadyConsumed
	}
	s.hasView = true
	s.listener = listener
	return nil
}

// detach releases the consumer's registration; the subpartition cannot be
// consumed again (pipelined data is gone once read).
func (s *subpartition) detach() {
	s.mu.Lock()
	s.listener = nil
	s.mu.Unlock()
}

// release drops every queued buffer.
func (s *subpartition) release() {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return
	}
	s.released = true
	if s.spill != nil {
		s.releaseSpillReader()
		return
	}
	q := s.queue.drain()
	settled := s.readerReleasedLocked(len(q))
	lost, acked, reader := s.lost, s.ackedAll, s.reader
	l := s.listener
	s.listener = nil
	s.mu.Unlock()
	if settled {
		s.part.readerReleased(s.index, lost, acked, reader)
	}
	if l != nil {
		l() // a reader still attached learns that the data is gone
	}
	for _, e := range q {
		if e.isEvent {
			e.event.Release()
		} else {
			Buffer{seg: e.seg}.Release()
		}
	}
}

func isEndOfPartition(b Buffer) bool {
	d := b.Bytes()
	return len(d) == 1 && d[0] == eventEndOfPartition
}

func (s *subpartition) isReleased() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.released
}
