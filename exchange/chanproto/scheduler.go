package chanproto

import (
	"sync"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Scheduler is the ready queue of one connection's writer: the outbounds
// that have something to send, served round robin (a channel with more
// goes to the back), so that one busy channel cannot starve the others.
type Scheduler struct {
	wake waker

	mu     sync.Mutex
	q      []*Outbound
	head   int
	closed bool
}

// NewScheduler returns an empty scheduler.
func NewScheduler() *Scheduler { return &Scheduler{wake: newWaker()} }

// Wake is signalled when an outbound becomes ready, and by Signal.
func (s *Scheduler) Wake() <-chan struct{} { return s.wake }

// Signal wakes the writer (to see a state change of its own).
func (s *Scheduler) Signal() { s.wake.signal() }

// waker wakes one writer goroutine; signals while it is awake coalesce.
type waker chan struct{}

func newWaker() waker { return make(waker, 1) }

func (w waker) signal() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// Ready queues o (Outbound's onReady). An outbound that is queued already
// is not queued twice; one that is held (being written outside the
// scheduler) is queued when Resume lets it go.
func (s *Scheduler) Ready(o *Outbound) {
	s.mu.Lock()
	if s.closed || o.queued || o.ended.Load() {
		s.mu.Unlock()
		return
	}
	if o.busy {
		o.pending = true
		s.mu.Unlock()
		return
	}
	s.pushLocked(o)
	s.mu.Unlock()
	s.Signal()
}

func (s *Scheduler) pushLocked(o *Outbound) {
	if s.head > 0 && len(s.q) == cap(s.q) {
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q, s.head = s.q[:n], 0
	}
	o.queued = true
	s.q = append(s.q, o)
}

// Pop returns the next ready outbound, or nil.
func (s *Scheduler) Pop() *Outbound {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.head < len(s.q) {
		o := s.q[s.head]
		s.q[s.head] = nil
		s.head++
		o.queued = false
		if o.busy {
			// Readied between its Pop and its Hold: served after Resume,
			// so that its frames stay in order.
			o.pending = true
			continue
		}
		if !o.ended.Load() {
			if s.head == len(s.q) {
				s.q, s.head = s.q[:0], 0
			}
			return o
		}
	}
	s.q, s.head = s.q[:0], 0
	return nil
}

// Hold marks o as being written outside the scheduler: it is not served
// until Resume.
func (s *Scheduler) Hold(o *Outbound) {
	s.mu.Lock()
	o.busy = true
	s.mu.Unlock()
}

// Resume ends a Hold; o is queued again if it has more or became ready
// meanwhile.
func (s *Scheduler) Resume(o *Outbound, more bool) {
	s.mu.Lock()
	o.busy = false
	if more || o.pending {
		o.pending = false
		if !s.closed && !o.queued {
			s.pushLocked(o)
		}
	}
	s.mu.Unlock()
	s.Signal()
}

// Close drops every queued outbound; Ready does nothing afterwards.
func (s *Scheduler) Close() {
	s.mu.Lock()
	s.closed = true
	clear(s.q)
	s.q, s.head = nil, 0
	s.mu.Unlock()
	s.Signal()
}

// Serve writes frames of ready outbounds, round robin, until about
// budget bytes went to emit or none is ready. emit gets each frame with
// its payload (which it then owns) and returns the bytes it accounts for.
// It reports whether it stopped on the budget (more may be ready).
func (s *Scheduler) Serve(budget int, emit func(o *Outbound, m wire.Message, payload exchange.Buffer, st Status) int) bool {
	for used := 0; used < budget; {
		o := s.Pop()
		if o == nil {
			return false
		}
		m, p, st := o.Next()
		if m != nil {
			used += emit(o, m, p, st)
		}
		if st.More && !st.Done {
			s.Ready(o)
		}
	}
	return true
}
