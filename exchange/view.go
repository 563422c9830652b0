package exchange

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/qexchange/qexchange/credit"
	"github.com/qexchange/qexchange/exchange/wire"
)

// ResponseKind says what a SubpartitionView wants sent.
type ResponseKind uint8

const (
	// ResponseNone: nothing to send now.
	ResponseNone ResponseKind = iota
	// ResponseBuffer: a BufferResponse carrying Buffer (length 0 for an
	// empty buffer that hands back unusable credit).
	ResponseBuffer
	// ResponseBacklog: a BacklogAnnouncement of Backlog.
	ResponseBacklog
	// ResponseError: an ErrorResponse for this channel carrying Err; the
	// view is done afterwards.
	ResponseError
)

// Response is one message a SubpartitionView wants sent to its consumer.
type Response struct {
	Kind ResponseKind
	// Buffer is the payload of a ResponseBuffer; Buffer.DataType is the
	// BufferResponse's data type. The transport releases it once written.
	Buffer   Buffer
	Sequence int32
	Backlog  int
	Err      error
	// More: the view has something else to send right away. When false,
	// the view calls onAvailable again once it has.
	More bool
}

// SubpartitionView is the producer-side state of one remote input channel reading
// one subpartition (Flink's CreditBasedSequenceNumberingViewReader): it
// applies credit, numbers buffers and reports backlog. Transports drive
// it; the calls of one view must not run concurrently with each other,
// except AddCredit, Resume, TaskEvent, AckAllRecordsProcessed and Release,
// which may come from the transport's read side at any time.
type SubpartitionView struct {
	part        *ResultPartition
	sub         *subpartition
	req         ViewRequest
	onAvailable func(*SubpartitionView)

	mu            sync.Mutex
	credit        *credit.Sender
	releaseCredit bool // send empty buffers to hand back unusable credit
	done          bool // EndOfPartition or an error was handed out
	released      bool

	queued atomic.Bool // onAvailable called and not yet drained by Next
}

// Request is the partition request the view serves.
func (r *SubpartitionView) Request() ViewRequest { return r.req }

// Next returns the next message to send, consuming credit for data.
func (r *SubpartitionView) Next() Response {
	resp := r.next()
	resp.More = r.available()
	if !resp.More {
		r.queued.Store(false)
		// Something may have become available between the check and the
		// store; notify() saw queued=true then and did nothing.
		if r.available() && r.queued.CompareAndSwap(false, true) {
			resp.More = true
		}
	}
	return resp
}

func (r *SubpartitionView) next() Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released || r.done {
		return Response{}
	}
	if err := r.part.failure(); err != nil {
		r.done = true
		return Response{Kind: ResponseError, Err: err}
	}
	if r.sub.isReleased() {
		r.done = true
		return Response{Kind: ResponseError, Err: fmt.Errorf("%w: partition %s released by its producer", ErrClosed, r.part.id)}
	}
	res := r.sub.poll(r.credit.Credit() > 0)
	if res.ok {
		isEvent := res.buf.DataType.IsEvent()
		seq, err := r.credit.Sent(isEvent)
		if err != nil { // poll honours credit; this is a bug guard
			res.buf.Release()
			r.done = true
			return Response{Kind: ResponseError, Err: err}
		}
		if isEvent && isEndOfPartition(res.buf) {
			r.done = true
		}
		if !isEvent {
			r.releaseCredit = r.credit.ShouldReleaseCredit(res.backlog, res.dataQueued)
		}
		return Response{Kind: ResponseBuffer, Buffer: res.buf, Sequence: seq, Backlog: res.backlog}
	}
	if r.credit.NeedsBacklogAnnouncement(res.backlog) {
		r.credit.BacklogAnnounced(res.backlog)
		return Response{Kind: ResponseBacklog, Backlog: res.backlog}
	}
	if r.releaseCredit {
		if !r.credit.ShouldReleaseCredit(res.backlog, res.dataQueued) {
			r.releaseCredit = false
			return Response{}
		}
		seq, _ := r.credit.Sent(false)
		r.releaseCredit = r.credit.Credit() > 0
		return Response{Kind: ResponseBuffer, Buffer: Buffer{DataType: wire.DataBuffer}, Sequence: seq, Backlog: 0}
	}
	return Response{}
}

// available reports whether Next would return something.
func (r *SubpartitionView) available() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released || r.done {
		return false
	}
	if r.part.failure() != nil || r.sub.isReleased() {
		return true
	}
	c := r.credit.Credit()
	if r.sub.available(c > 0) {
		return true
	}
	if r.releaseCredit {
		return true
	}
	return r.credit.NeedsBacklogAnnouncement(r.sub.backlogNow())
}

// notify hands the view to the transport when it has something to send.
func (r *SubpartitionView) notify() {
	if r.queued.Load() || !r.available() {
		return
	}
	if r.queued.CompareAndSwap(false, true) {
		r.onAvailable(r)
	}
}

// AddCredit records an AddCredit from the consumer. Zero or negative
// credit is a protocol error.
func (r *SubpartitionView) AddCredit(n int) error {
	r.mu.Lock()
	err := r.credit.Add(n)
	if err == nil {
		r.releaseCredit = false
	}
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: channel %s: %w", ErrProtocol, r.req.Receiver, err)
	}
	r.notify()
	return nil
}

// Resume unblocks the subpartition after an aligned checkpoint barrier.
func (r *SubpartitionView) Resume() { r.sub.resume() }

// TaskEvent passes a consumer's task event to the partition's handler.
func (r *SubpartitionView) TaskEvent(event []byte) {
	if r.part.onEvent != nil {
		r.part.onEvent(r.sub.index, event)
	}
}

// AckAllRecordsProcessed records the consumer's acknowledgement of
// EndOfData.
func (r *SubpartitionView) AckAllRecordsProcessed() { r.part.ackAllRecordsProcessed(r.sub.index) }

// Release ends the view (cancel, close, or connection loss). Pipelined
// data cannot be read twice, so the subpartition's queued data is dropped
// and its memory returned.
func (r *SubpartitionView) Release() {
	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		return
	}
	r.released = true
	r.mu.Unlock()
	r.sub.detach()
	r.sub.release()
}

// partitionManager is the node's registry of partitions (Flink's
// ResultPartitionManager); it answers partition requests.
type partitionManager struct {
	mu     sync.Mutex
	parts  map[PartitionID]*ResultPartition
	closed bool
}

func (m *partitionManager) register(p *ResultPartition) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, dup := m.parts[p.id]; dup {
		return configError("partition ID", p.id, "already registered")
	}
	m.parts[p.id] = p
	return nil
}

func (m *partitionManager) unregister(p *ResultPartition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.parts[p.id] == p {
		delete(m.parts, p.id)
	}
}

func (m *partitionManager) lookup(id PartitionID) (*ResultPartition, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	p := m.parts[id]
	if p == nil {
		return nil, &PartitionNotFoundError{Partition: id}
	}
	return p, nil
}

// OpenView implements ViewProvider.
func (m *partitionManager) OpenView(req ViewRequest, onAvailable func(*SubpartitionView)) (*SubpartitionView, error) {
	p, err := m.lookup(req.Partition)
	if err != nil {
		return nil, err
	}
	sub, err := p.subpartition(req.Subpartition)
	if err != nil {
		return nil, err
	}
	cs, err := credit.NewSender(req.InitialCredit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	r := &SubpartitionView{part: p, sub: sub, req: req, onAvailable: onAvailable, credit: cs}
	if err := sub.attach(r.notify); err != nil {
		if errors.Is(err, ErrAlreadyConsumed) {
			// The message the consumer reads: say what happened.
			return nil, fmt.Errorf("subpartition %d of partition %s already has a consumer%.0w", req.Subpartition, req.Partition, err)
		}
		return nil, fmt.Errorf("partition %s subpartition %d: %w", req.Partition, req.Subpartition, err)
	}
	sub.setReader(req.Peer) // named if the consumer goes away (shutdown.go)
	sub.sendsOverNetwork()  // compressed buffers go out as they are (compression.go)
	r.notify()
	return r, nil
}

// WireErrorCode maps an error to the ErrorResponse code transports send.
func WireErrorCode(err error) wire.ErrorCode {
	switch {
	case errors.Is(err, ErrPartitionNotFound):
		return wire.CodePartitionNotFound
	case errors.Is(err, ErrProtocol):
		return wire.CodeProtocol
	case errors.Is(err, ErrClosed):
		return wire.CodeCancelled
	case errors.Is(err, ErrAlreadyConsumed):
		return wire.CodeDuplicateReceiver
	case errors.Is(err, ErrInsufficientBuffers):
		return wire.CodeInsufficientCapacity
	}
	return wire.CodeInternal
}

// ErrorFromWire turns a received ErrorResponse into the error a channel
// (or, if fatal, every channel of the connection) fails with.
func ErrorFromWire(peer string, partition PartitionID, m *wire.ErrorResponse) error {
	if m.Code == wire.CodePartitionNotFound && !m.Fatal {
		return &PartitionNotFoundError{Partition: partition, Peer: peer}
	}
	return &RemoteError{Peer: peer, Channel: ChannelID(m.ReceiverID), Fatal: m.Fatal, Code: m.Code, Message: fmt.Sprintf("%s: %s", m.Code, m.Message)}
}
