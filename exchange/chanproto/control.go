package chanproto

import (
	"math"
	"sync"

	"github.com/qexchange/qexchange/exchange/wire"
)

type opKind uint8

const (
	opRequest opKind = iota
	opCredit
	opResume
	opAck
	opEvent
	opBufferSize
	opCancel
)

// op is one consumer message queued for the writer.
type op struct {
	kind opKind
	ch   *Channel
	n    int32 // credit of a request, buffer size
	sub  int32
	data []byte
}

// ControlQueue holds the messages consumers send to producers on one
// connection (TCP) or stream (QUIC), in the order they were queued, until
// the transport's writer takes them. An AddCredit is queued at most once
// per channel and takes the channel's credit when it is written.
type ControlQueue struct {
	wake waker

	mu    sync.Mutex
	ops   []op
	spare []op
	err   error

	// Writer-owned scratch messages, so that encoding does not allocate.
	mReq    wire.PartitionRequest
	mCredit wire.AddCredit
	mResume wire.ResumeConsumption
	mAck    wire.AckAllUserRecordsProcessed
	mEvent  wire.TaskEventRequest
	mSize   wire.NewBufferSize
	mCancel wire.CancelPartitionRequest
}

// NewControlQueue returns an empty queue.
func NewControlQueue() *ControlQueue { return &ControlQueue{wake: newWaker()} }

// Wake is signalled after messages are queued and by Signal.
func (q *ControlQueue) Wake() <-chan struct{} { return q.wake }

// Signal wakes the writer (to see a state change of its own).
func (q *ControlQueue) Signal() { q.wake.signal() }

func (q *ControlQueue) push(o op) error {
	q.mu.Lock()
	if q.err != nil {
		err := q.err
		q.mu.Unlock()
		return err
	}
	q.ops = append(q.ops, o)
	q.mu.Unlock()
	q.Signal()
	return nil
}

// Stop makes every later message fail with err (the connection broke).
func (q *ControlQueue) Stop(err error) {
	q.mu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.mu.Unlock()
	q.Signal()
}

// Request queues ch's PartitionRequest.
func (q *ControlQueue) Request(ch *Channel, subpartition, credit int) error {
	return q.push(op{kind: opRequest, ch: ch, sub: int32(subpartition), n: int32(credit)})
}

// Cancel queues ch's CancelPartitionRequest (written even though the
// channel is closed); it is dropped if the queue is stopped.
func (q *ControlQueue) Cancel(ch *Channel) { _ = q.push(op{kind: opCancel, ch: ch}) }

// Drain takes every queued message and calls emit with it, in order.
// Messages of closed channels are skipped, except cancels; an AddCredit
// carries the credit its channel has not announced yet, and is skipped if
// there is none. m is valid during the call only.
func (q *ControlQueue) Drain(emit func(ch *Channel, m wire.Message)) {
	q.mu.Lock()
	ops := q.ops
	q.ops = q.spare[:0]
	q.mu.Unlock()
	for i := range ops {
		if m := q.message(&ops[i]); m != nil {
			emit(ops[i].ch, m)
		}
		ops[i] = op{}
	}
	q.mu.Lock()
	q.spare = ops[:0]
	q.mu.Unlock()
}

// AppendFrames drains the queue into dst as encoded frames.
func (q *ControlQueue) AppendFrames(dst []byte, opts wire.Options) []byte {
	q.Drain(func(_ *Channel, m wire.Message) { dst = wire.AppendFrame(dst, m, opts) })
	return dst
}

func (q *ControlQueue) message(o *op) wire.Message {
	ch := o.ch
	if o.kind == opCancel {
		q.mCancel.ReceiverID = ch.Receiver
		return &q.mCancel
	}
	if ch.closed.Load() {
		return nil
	}
	switch o.kind {
	case opRequest:
		q.mReq = wire.PartitionRequest{PartitionID: wire.ID(ch.Partition), Subpartition: o.sub, ReceiverID: ch.Receiver, Credit: o.n}
		return &q.mReq
	case opCredit:
		ch.creditQueued.Store(false)
		n := 0
		ch.call(func() { n = ch.h.TakeUnannouncedCredit() })
		if n <= 0 {
			return nil
		}
		q.mCredit = wire.AddCredit{ReceiverID: ch.Receiver, Credit: int32(min(n, math.MaxInt32))}
		return &q.mCredit
	case opResume:
		q.mResume.ReceiverID = ch.Receiver
		return &q.mResume
	case opAck:
		q.mAck.ReceiverID = ch.Receiver
		return &q.mAck
	case opEvent:
		q.mEvent = wire.TaskEventRequest{PartitionID: wire.ID(ch.Partition), ReceiverID: ch.Receiver, Event: o.data}
		return &q.mEvent
	case opBufferSize:
		q.mSize = wire.NewBufferSize{ReceiverID: ch.Receiver, BufferSize: o.n}
		return &q.mSize
	}
	return nil
}
