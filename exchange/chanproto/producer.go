package chanproto

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Outbound is the producer side of one channel on a connection: it
// applies the consumer's control messages to the channel's
// exchange.SubpartitionView and turns the view's responses into frames.
type Outbound struct {
	Receiver  wire.ID // the channel's receiverId (zero on QUIC)
	Partition wire.ID
	Peer      string
	// Owner is the transport's own state of the channel (its stream).
	Owner any

	opts    wire.Options
	peerMax int
	onReady func(*Outbound)

	mu      sync.Mutex
	view    *exchange.SubpartitionView
	failErr error // a channel violation to report, then end

	ended    atomic.Bool // released: nothing more is sent
	urgent   bool        // Next: the last buffer was a priority event
	hdr      wire.BufferResponse
	backlog  wire.BacklogAnnouncement
	errorMsg wire.ErrorResponse

	// Under Scheduler.mu.
	queued, busy, pending bool
}

// NewOutbound returns the producer side of a channel whose consumer
// accepts frames of up to peerMax bytes. onReady is called each time the
// outbound has something to send (typically Scheduler.Ready).
func NewOutbound(receiver, partition wire.ID, peer string, opts wire.Options, peerMax int, onReady func(*Outbound)) *Outbound {
	return &Outbound{Receiver: receiver, Partition: partition, Peer: peer, opts: opts, peerMax: peerMax, onReady: onReady}
}

// Open opens the channel's view through p; the error is the refusal to
// send the consumer (see Refusal).
func (o *Outbound) Open(p exchange.ViewProvider, req exchange.ViewRequest) error {
	v, err := p.OpenView(req, func(v *exchange.SubpartitionView) {
		o.setView(v) // may be called from inside OpenView
		o.onReady(o)
	})
	if err != nil {
		return err
	}
	o.setView(v)
	return nil
}

func (o *Outbound) setView(v *exchange.SubpartitionView) {
	o.mu.Lock()
	if o.view == nil {
		o.view = v
	}
	o.mu.Unlock()
}

func (o *Outbound) getView() *exchange.SubpartitionView {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.view
}

// Refusal is the ErrorResponse that answers a refused partition request
// (or any error that ends a channel).
func Refusal(receiver wire.ID, err error) *wire.ErrorResponse {
	return &wire.ErrorResponse{ReceiverID: receiver, Code: exchange.WireErrorCode(err), Message: err.Error()}
}

// Apply applies one control message of the consumer to the view. It
// reports handled=false for messages that are not per-channel control
// (PartitionRequest, CancelPartitionRequest, CloseRequest, ...): those are
// the transport's. A non-nil error is a violation that belongs to this
// channel: the transport calls Fail with it, and the connection goes on.
func (o *Outbound) Apply(m wire.Message) (handled bool, err error) {
	v := o.getView()
	switch m := m.(type) {
	case *wire.AddCredit:
		// The codec decodes any credit; a credit <= 0 is this channel's
		// violation (docs/architecture.md, "Failure policy").
		if m.Credit <= 0 {
			return true, &wire.FieldError{Msg: wire.IDAddCredit, Field: "credit", Value: int64(m.Credit),
				Err: wire.ErrInvalidField, Reason: "must be > 0"}
		}
		return true, v.AddCredit(int(m.Credit))
	case *wire.ResumeConsumption:
		v.Resume()
	case *wire.AckAllUserRecordsProcessed:
		v.AckAllRecordsProcessed()
	case *wire.TaskEventRequest:
		if m.PartitionID != o.Partition {
			return true, fmt.Errorf("%w: TaskEventRequest for partition %s on a channel of partition %s",
				wire.ErrInvalidField, exchange.PartitionID(m.PartitionID), exchange.PartitionID(o.Partition))
		}
		v.TaskEvent(bytes.Clone(m.Event))
	case *wire.NewBufferSize:
		// Buffer debloating: the producer cuts this channel's buffers at
		// the consumer's size (the codec checked it is > 0).
		v.SetBufferSize(int(m.BufferSize))
	default:
		return false, nil
	}
	return true, nil
}

// Fail ends the channel for a violation of its consumer: the view is
// released and Next yields an ErrorResponse of code wire.CodeProtocol
// naming the peer, then nothing.
func (o *Outbound) Fail(err error) {
	o.mu.Lock()
	if o.failErr == nil && !o.ended.Load() {
		o.failErr = &exchange.ProtocolError{Peer: o.Peer, Err: err}
	}
	v := o.view
	o.mu.Unlock()
	if v != nil {
		v.Release()
	}
	o.onReady(o)
}

// Release ends the channel without a message (cancel, connection loss).
func (o *Outbound) Release() {
	o.ended.Store(true)
	if v := o.getView(); v != nil {
		v.Release()
	}
}

// Ended reports whether the channel is over.
func (o *Outbound) Ended() bool { return o.ended.Load() }

// Status says what Next's frame means for the channel.
type Status struct {
	// More: the channel has another frame ready; with it false the view
	// calls onReady again once it has.
	More bool
	// Done: the frame is the channel's last (an ErrorResponse); the view
	// is released and the transport forgets the channel after writing it.
	Done bool
	// Buffer: the frame is a BufferResponse.
	Buffer bool
}

// Urgent reports whether the last buffer Next returned was a priority
// event, which a transport with stream priorities sends first.
func (o *Outbound) Urgent() bool { return o.urgent }

// Next returns the channel's next frame and the payload to write after
// it (a zero Buffer if none; the transport releases it once written), or
// a nil message if there is nothing to send. m is valid until the next
// call. Calls must not run concurrently.
func (o *Outbound) Next() (m wire.Message, payload exchange.Buffer, st Status) {
	if o.ended.Load() {
		return nil, exchange.Buffer{}, st
	}
	o.mu.Lock()
	ferr, v := o.failErr, o.view
	o.mu.Unlock()
	if ferr != nil {
		return o.end(ferr), exchange.Buffer{}, Status{Done: true}
	}
	if v == nil {
		return nil, exchange.Buffer{}, st
	}
	resp := v.Next()
	st.More = resp.More
	switch resp.Kind {
	case exchange.ResponseBuffer:
		b := resp.Buffer
		n := b.Len()
		if flen := wire.BufferResponseHeaderLen(o.opts.StreamMode) + n; flen > o.peerMax {
			b.Release()
			return o.end(fmt.Errorf("%w: buffer of %d bytes does not fit the consumer's maximum frame size %d (segment sizes differ?)",
				exchange.ErrInsufficientBuffers, n, o.peerMax)), exchange.Buffer{}, Status{Done: true}
		}
		o.hdr = wire.BufferResponse{ReceiverID: o.Receiver, Sequence: resp.Sequence, Backlog: int32(max(resp.Backlog, 0)),
			DataType: b.DataType, Compressed: b.Compressed, Size: int32(n)}
		st.Buffer = true
		o.urgent = b.DataType.IsPriority()
		if n == 0 {
			b.Release()
			b = exchange.Buffer{}
		}
		return &o.hdr, b, st
	case exchange.ResponseBacklog:
		o.backlog = wire.BacklogAnnouncement{ReceiverID: o.Receiver, Backlog: int32(max(resp.Backlog, 0))}
		return &o.backlog, exchange.Buffer{}, st
	case exchange.ResponseError:
		return o.end(resp.Err), exchange.Buffer{}, Status{Done: true}
	}
	return nil, exchange.Buffer{}, st
}

func (o *Outbound) end(err error) wire.Message {
	o.Release()
	o.errorMsg = *Refusal(o.Receiver, err)
	return &o.errorMsg
}

// ReceiverOf returns the receiverId a consumer control message names.
func ReceiverOf(m wire.Message) (wire.ID, bool) {
	switch m := m.(type) {
	case *wire.AddCredit:
		return m.ReceiverID, true
	case *wire.ResumeConsumption:
		return m.ReceiverID, true
	case *wire.AckAllUserRecordsProcessed:
		return m.ReceiverID, true
	case *wire.TaskEventRequest:
		return m.ReceiverID, true
	case *wire.NewBufferSize:
		return m.ReceiverID, true
	}
	return wire.ID{}, false
}
