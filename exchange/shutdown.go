package exchange

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Delivery-safe shutdown (docs/architecture.md, "Shutdown"). A finished
// subpartition is delivered when its reader took EndOfPartition and then
// released it: a consumer releases its channel when it reads
// EndOfPartition (CancelPartitionRequest on TCP, a stream reset on QUIC),
// so the end of the channel after EndOfPartition means the consumer has
// everything, and closing the connection can no longer discard data. A
// reader that releases a subpartition before taking EndOfPartition went
// away: what was queued for it, and what is written for it afterwards, is
// dropped and counted, and the producer is told (Finish,
// WaitAllRecordsProcessed, Environment.Shutdown).

var (
	// ErrConsumerLost: the consumer of a subpartition went away (cancelled
	// its channel, lost its connection) before taking EndOfPartition; the
	// records written for it were dropped.
	ErrConsumerLost = errors.New("exchange: consumer lost")
	// ErrUndelivered: Environment.Shutdown closed the node with finished
	// subpartitions that their consumers had not consumed to the end.
	ErrUndelivered = errors.New("exchange: data not delivered")
)

// ConsumerLostError names the consumer that went away.
type ConsumerLostError struct {
	Partition    PartitionID
	Subpartition int
	// Consumer is the consumer node's address as the transport saw it
	// ("local" for a channel of the same environment).
	Consumer string
}

func (e *ConsumerLostError) Error() string {
	return fmt.Sprintf("exchange: consumer %s of partition %s subpartition %d went away before the end of the partition; its records were dropped",
		e.Consumer, e.Partition, e.Subpartition)
}

func (e *ConsumerLostError) Unwrap() error { return ErrConsumerLost }

// UndeliveredError says what Environment.Shutdown could not deliver.
type UndeliveredError struct {
	// Subpartitions of finished partitions not consumed to the end, and
	// the buffers (data and events) they held or dropped.
	Subpartitions, Buffers int
	// Lost are the consumers that went away (some of Subpartitions).
	Lost []*ConsumerLostError
	// Cause is why Shutdown stopped waiting for the rest: its context's
	// cause, or nil when every remaining subpartition's consumer was lost.
	Cause error
}

func (e *UndeliveredError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "exchange: shutdown: %d subpartition(s) with %d buffer(s) not consumed", e.Subpartitions, e.Buffers)
	for i, l := range e.Lost {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more consumer(s) lost", len(e.Lost)-i)
			break
		}
		fmt.Fprintf(&b, "; consumer %s of partition %s subpartition %d went away", l.Consumer, l.Partition, l.Subpartition)
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, "; gave up waiting: %v", e.Cause)
	}
	return b.String()
}

func (e *UndeliveredError) Unwrap() []error {
	errs := []error{ErrUndelivered}
	for _, l := range e.Lost {
		errs = append(errs, l)
	}
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	return errs
}

// deliveryState is a partition's view of its consumers: their
// acknowledgements of EndOfData and the ends of their readers.
type deliveryState struct {
	mu        sync.Mutex
	acks      int
	ackErr    error // the consumer lost before acknowledging
	ackClosed bool  // allAcked is closed
	settled   int   // subpartitions released by their reader
	lost      []*ConsumerLostError
	// allSettled is closed when every subpartition's reader released it.
	allSettled chan struct{}
	once       sync.Once
}

func (d *deliveryState) settledCh() chan struct{} {
	d.once.Do(func() { d.allSettled = make(chan struct{}) })
	return d.allSettled
}

// acked counts one subpartition's acknowledgement.
func (d *deliveryState) acked(p *ResultPartition) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acks++
	if d.acks == len(p.subs) && !d.ackClosed {
		d.ackClosed = true
		close(p.allAcked)
	}
}

func (d *deliveryState) ackResult() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ackErr
}

// lostError is nil, or the loss of the first consumer that went away (all
// of them joined if several did).
func (d *deliveryState) lostError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch len(d.lost) {
	case 0:
		return nil
	case 1:
		return d.lost[0]
	}
	errs := make([]error, len(d.lost))
	for i, l := range d.lost {
		errs[i] = l
	}
	return errors.Join(errs...)
}

// readerReleasedLocked is called by release (s.mu held) with the number
// of queue entries it drops: it reports whether the reader (not the
// producer) released the subpartition, and marks it lost if that came
// before EndOfPartition was taken. BLOCKING readers are not tracked: the
// partition stays consumable.
func (s *subpartition) readerReleasedLocked(dropped int) bool {
	if s.spill != nil || !s.hasView || s.part.released.Load() || s.part.failure() != nil {
		return false
	}
	if !s.consumed {
		s.lost = true
		s.dropped += dropped
	}
	return true
}

func (s *subpartition) setReader(peer string) {
	s.mu.Lock()
	s.reader = peer
	s.mu.Unlock()
}

// countDroppedLocked counts buffers refused after the reader went away.
func (s *subpartition) countDroppedLocked(n int) {
	if s.lost {
		s.dropped += n
	}
}

// readerReleased records the end of subpartition sub's reader.
func (p *ResultPartition) readerReleased(sub int, lost, acked bool, reader string) {
	d := &p.delivery
	settled := d.settledCh()
	d.mu.Lock()
	defer d.mu.Unlock()
	if lost {
		if reader == "" {
			reader = "local"
		}
		le := &ConsumerLostError{Partition: p.id, Subpartition: sub, Consumer: reader}
		d.lost = append(d.lost, le)
		if !acked && !d.ackClosed {
			d.ackErr = le
			d.ackClosed = true
			close(p.allAcked)
		}
	}
	d.settled++
	if d.settled == len(p.subs) {
		close(settled)
	}
}

// undelivered counts p's subpartitions not delivered and their buffers.
func (p *ResultPartition) undelivered() (subs, buffers int) {
	if p.released.Load() {
		return 0, 0 // released by its producer while Shutdown waited
	}
	for i := range p.subs {
		s := &p.subs[i]
		s.mu.Lock()
		delivered := s.released && s.consumed && !s.lost
		if !delivered {
			subs++
			buffers += s.queue.len() + s.dropped
		}
		s.mu.Unlock()
	}
	return subs, buffers
}

// finishedPipelined reports whether Shutdown waits for p's delivery.
func (p *ResultPartition) finishedPipelined() bool {
	if p.blocking != nil || p.released.Load() || p.failure() != nil {
		return false
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.finished
}

// Shutdown closes the node without losing what it produced: it waits
// until every finished pipelined partition has been consumed to the end
// (each subpartition's EndOfPartition taken by its consumer, which then
// released the channel), then closes as Close does. Partitions not
// finished, failed or BLOCKING are not waited for.
//
// If ctx ends first, or consumers went away, Shutdown still closes and
// returns an *UndeliveredError (errors.Is ErrUndelivered, and
// ErrConsumerLost when consumers were lost) saying how many subpartitions
// and buffers were not consumed. It returns as soon as every subpartition
// is delivered or lost: a consumer that is gone costs no waiting beyond
// the time its transport takes to notice (docs/architecture.md,
// "Shutdown"). The close itself is bounded by ctx too: if it has not
// finished when ctx is done, it goes on in the background (Close waits
// for it).
func (e *Environment) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	parts := make([]*ResultPartition, 0, len(e.owned))
	for p := range e.owned {
		parts = append(parts, p)
	}
	e.mu.Unlock()
	var derr error
	if !e.isClosed() {
		derr = awaitDelivery(ctx, parts)
	}
	done := make(chan error, 1)
	go func() { done <- e.Close() }()
	select {
	case err := <-done:
		return errors.Join(derr, err)
	case <-ctx.Done():
		return errors.Join(derr, fmt.Errorf("exchange: environment close: %w", context.Cause(ctx)))
	}
}

func (e *Environment) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// awaitDelivery waits for the finished pipelined partitions among parts
// to be delivered; it returns an *UndeliveredError for what was not.
func awaitDelivery(ctx context.Context, parts []*ResultPartition) error {
	var cause error
	waited := parts[:0]
	for _, p := range parts {
		if !p.finishedPipelined() {
			continue
		}
		waited = append(waited, p)
		if cause != nil {
			continue
		}
		select {
		case <-p.delivery.settledCh():
		case <-p.releasedCh:
		case <-ctx.Done():
			cause = context.Cause(ctx)
		}
	}
	ue := &UndeliveredError{Cause: cause}
	for _, p := range waited {
		n, b := p.undelivered()
		ue.Subpartitions += n
		ue.Buffers += b
		p.delivery.mu.Lock()
		ue.Lost = append(ue.Lost, p.delivery.lost...)
		p.delivery.mu.Unlock()
	}
	if ue.Subpartitions == 0 {
		return nil
	}
	return ue
}
