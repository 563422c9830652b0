package wire

import (
	"encoding/binary"
	"fmt"
)

// This file holds the control messages (everything but BufferResponse,
// ErrorResponse and Hello). In the layouts, [receiverId 16] is omitted in
// stream mode; decoded messages then carry a zero ReceiverID.

// PartitionRequest asks the producer for one subpartition, the consumer's
// initial credit (its exclusive buffers) included.
//
// Body: partitionId 16 | subpartition i32 | [receiverId 16] | credit i32.
type PartitionRequest struct {
	PartitionID  ID
	Subpartition int32 // >= 0
	ReceiverID   ID
	Credit       int32 // initial credit, >= 0
}

func (PartitionRequest) ID() MsgID { return IDPartitionRequest }

func (m PartitionRequest) AppendBody(dst []byte, streamMode bool) []byte {
	dst = appendID(dst, &m.PartitionID)
	dst = appendI32(dst, m.Subpartition)
	if !streamMode {
		dst = appendID(dst, &m.ReceiverID)
	}
	return appendI32(dst, m.Credit)
}

func (m PartitionRequest) validate() error {
	if m.Subpartition < 0 {
		return fieldErr(IDPartitionRequest, "subpartition", int64(m.Subpartition), "must be >= 0")
	}
	if m.Credit < 0 {
		return fieldErr(IDPartitionRequest, "credit", int64(m.Credit), "must be >= 0")
	}
	return nil
}

// DecodePartitionRequest decodes a PartitionRequest body.
func DecodePartitionRequest(body []byte, streamMode bool) (PartitionRequest, error) {
	var m PartitionRequest
	if err := checkLen(IDPartitionRequest, body, 16+4+recvLen(streamMode)+4); err != nil {
		return m, err
	}
	copy(m.PartitionID[:], body)
	m.Subpartition = getI32(body[16:])
	b := body[20:]
	if !streamMode {
		copy(m.ReceiverID[:], b)
		b = b[16:]
	}
	m.Credit = getI32(b)
	if err := m.validate(); err != nil {
		return PartitionRequest{}, err
	}
	return m, nil
}

// taskEventFixed: partitionId 16 | len u32.
const taskEventFixed = 16 + 4

// TaskEventRequest carries a serialized user task event from consumer to
// producer.
//
// Body: partitionId 16 | [receiverId 16] | len u32 | event (len bytes).
type TaskEventRequest struct {
	PartitionID ID
	ReceiverID  ID
	// Event is the serialized event. When decoded, it aliases the input
	// (for Reader.Next: the Reader's internal buffer) and is valid only
	// until the next call to Reader.Next; copy it to keep it.
	Event []byte
}

func (TaskEventRequest) ID() MsgID { return IDTaskEventRequest }

func (m TaskEventRequest) AppendBody(dst []byte, streamMode bool) []byte {
	dst = appendID(dst, &m.PartitionID)
	if !streamMode {
		dst = appendID(dst, &m.ReceiverID)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(m.Event)))
	return append(dst, m.Event...)
}

// DecodeTaskEventRequest decodes a TaskEventRequest body. The returned
// Event aliases body.
func DecodeTaskEventRequest(body []byte, streamMode bool) (TaskEventRequest, error) {
	var m TaskEventRequest
	n := taskEventFixed + recvLen(streamMode)
	if len(body) < n {
		return m, truncErr(IDTaskEventRequest, len(body), n)
	}
	copy(m.PartitionID[:], body)
	b := body[16:]
	if !streamMode {
		copy(m.ReceiverID[:], b)
		b = b[16:]
	}
	evLen := uint64(binary.BigEndian.Uint32(b))
	b = b[4:]
	switch {
	case evLen > uint64(len(b)):
		return TaskEventRequest{}, fmt.Errorf("%w: TaskEventRequest event is %d bytes, frame holds %d", ErrTruncated, evLen, len(b))
	case evLen < uint64(len(b)):
		return TaskEventRequest{}, fmt.Errorf("%w: TaskEventRequest event is %d bytes, frame holds %d", ErrTrailingBytes, evLen, len(b))
	}
	m.Event = b
	return m, nil
}

// CancelPartitionRequest cancels the partition request of one channel.
//
// Body: [receiverId 16].
type CancelPartitionRequest struct{ ReceiverID ID }

func (CancelPartitionRequest) ID() MsgID { return IDCancelPartitionRequest }

func (m CancelPartitionRequest) AppendBody(dst []byte, streamMode bool) []byte {
	return appendRecv(dst, &m.ReceiverID, streamMode)
}

// DecodeCancelPartitionRequest decodes a CancelPartitionRequest body.
func DecodeCancelPartitionRequest(body []byte, streamMode bool) (CancelPartitionRequest, error) {
	id, err := decodeRecvOnly(IDCancelPartitionRequest, body, streamMode)
	return CancelPartitionRequest{ReceiverID: id}, err
}

// CloseRequest asks the peer to close the connection gracefully.
//
// Body: empty.
type CloseRequest struct{}

func (CloseRequest) ID() MsgID { return IDCloseRequest }

func (CloseRequest) AppendBody(dst []byte, streamMode bool) []byte { return dst }

// DecodeCloseRequest decodes a CloseRequest body, which must be empty.
func DecodeCloseRequest(body []byte, streamMode bool) (CloseRequest, error) {
	return CloseRequest{}, checkLen(IDCloseRequest, body, 0)
}

// AddCredit announces credit (newly available buffers) to the producer.
//
// Body: [receiverId 16] | credit i32.
//
// Any credit decodes: a credit <= 0 is a violation of one channel, not of
// the framing, so the producer half (chanproto.Outbound) fails that channel
// and the connection goes on (docs/architecture.md, "Failure policy").
type AddCredit struct {
	ReceiverID ID
	Credit     int32 // > 0 from a correct consumer
}

func (AddCredit) ID() MsgID { return IDAddCredit }

func (m AddCredit) AppendBody(dst []byte, streamMode bool) []byte {
	return appendI32(appendRecv(dst, &m.ReceiverID, streamMode), m.Credit)
}

// DecodeAddCredit decodes an AddCredit body.
func DecodeAddCredit(body []byte, streamMode bool) (AddCredit, error) {
	id, v, err := decodeRecvI32(IDAddCredit, body, streamMode)
	if err != nil {
		return AddCredit{}, err
	}
	return AddCredit{ReceiverID: id, Credit: v}, nil
}

// ResumeConsumption unblocks a subpartition after an aligned barrier.
//
// Body: [receiverId 16].
type ResumeConsumption struct{ ReceiverID ID }

func (ResumeConsumption) ID() MsgID { return IDResumeConsumption }

func (m ResumeConsumption) AppendBody(dst []byte, streamMode bool) []byte {
	return appendRecv(dst, &m.ReceiverID, streamMode)
}

// DecodeResumeConsumption decodes a ResumeConsumption body.
func DecodeResumeConsumption(body []byte, streamMode bool) (ResumeConsumption, error) {
	id, err := decodeRecvOnly(IDResumeConsumption, body, streamMode)
	return ResumeConsumption{ReceiverID: id}, err
}

// AckAllUserRecordsProcessed acknowledges EndOfData: the consumer has
// processed every user record of the channel.
//
// Body: [receiverId 16].
type AckAllUserRecordsProcessed struct{ ReceiverID ID }

func (AckAllUserRecordsProcessed) ID() MsgID { return IDAckAllUserRecordsProcessed }

func (m AckAllUserRecordsProcessed) AppendBody(dst []byte, streamMode bool) []byte {
	return appendRecv(dst, &m.ReceiverID, streamMode)
}

// DecodeAckAllUserRecordsProcessed decodes an AckAllUserRecordsProcessed
// body.
func DecodeAckAllUserRecordsProcessed(body []byte, streamMode bool) (AckAllUserRecordsProcessed, error) {
	id, err := decodeRecvOnly(IDAckAllUserRecordsProcessed, body, streamMode)
	return AckAllUserRecordsProcessed{ReceiverID: id}, err
}

// BacklogAnnouncement tells a consumer without exclusive buffers how many
// buffers are waiting at the producer.
//
// Body: [receiverId 16] | backlog i32.
type BacklogAnnouncement struct {
	ReceiverID ID
	Backlog    int32 // >= 0
}

func (BacklogAnnouncement) ID() MsgID { return IDBacklogAnnouncement }

func (m BacklogAnnouncement) AppendBody(dst []byte, streamMode bool) []byte {
	return appendI32(appendRecv(dst, &m.ReceiverID, streamMode), m.Backlog)
}

func (m BacklogAnnouncement) validate() error {
	if m.Backlog < 0 {
		return fieldErr(IDBacklogAnnouncement, "backlog", int64(m.Backlog), "must be >= 0")
	}
	return nil
}

// DecodeBacklogAnnouncement decodes a BacklogAnnouncement body.
func DecodeBacklogAnnouncement(body []byte, streamMode bool) (BacklogAnnouncement, error) {
	id, v, err := decodeRecvI32(IDBacklogAnnouncement, body, streamMode)
	if err != nil {
		return BacklogAnnouncement{}, err
	}
	m := BacklogAnnouncement{ReceiverID: id, Backlog: v}
	if err := m.validate(); err != nil {
		return BacklogAnnouncement{}, err
	}
	return m, nil
}

// NewBufferSize announces the consumer's new (debloated) buffer size.
//
// Body: [receiverId 16] | bufferSize i32.
type NewBufferSize struct {
	ReceiverID ID
	BufferSize int32 // > 0
}

func (NewBufferSize) ID() MsgID { return IDNewBufferSize }

func (m NewBufferSize) AppendBody(dst []byte, streamMode bool) []byte {
	return appendI32(appendRecv(dst, &m.ReceiverID, streamMode), m.BufferSize)
}

func (m NewBufferSize) validate() error {
	if m.BufferSize <= 0 {
		return fieldErr(IDNewBufferSize, "bufferSize", int64(m.BufferSize), "must be > 0")
	}
	return nil
}

// DecodeNewBufferSize decodes a NewBufferSize body.
func DecodeNewBufferSize(body []byte, streamMode bool) (NewBufferSize, error) {
	id, v, err := decodeRecvI32(IDNewBufferSize, body, streamMode)
	if err != nil {
		return NewBufferSize{}, err
	}
	m := NewBufferSize{ReceiverID: id, BufferSize: v}
	if err := m.validate(); err != nil {
		return NewBufferSize{}, err
	}
	return m, nil
}

func appendRecv(dst []byte, id *ID, streamMode bool) []byte {
	if streamMode {
		return dst
	}
	return appendID(dst, id)
}

// decodeRecvOnly decodes a body that is just [receiverId 16].
func decodeRecvOnly(msg MsgID, body []byte, streamMode bool) (ID, error) {
	var id ID
	if err := checkLen(msg, body, recvLen(streamMode)); err != nil {
		return id, err
	}
	copy(id[:], body)
	return id, nil
}

// decodeRecvI32 decodes a body [receiverId 16] | i32.
func decodeRecvI32(msg MsgID, body []byte, streamMode bool) (ID, int32, error) {
	var id ID
	n := recvLen(streamMode)
	if err := checkLen(msg, body, n+4); err != nil {
		return id, 0, err
	}
	copy(id[:], body[:n])
	return id, getI32(body[n:]), nil
}
