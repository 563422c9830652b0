package exchange

import (
	"encoding/binary"
	"fmt"

	"github.com/qexchange/qexchange/exchange/wire"
)

// Event is an in-band control message that travels in order with the
// records of a channel (Flink's AbstractEvent). The implementations are
// EndOfPartition, EndOfData, CheckpointBarrier, CancelCheckpoint and
// UserEvent.
type Event interface {
	// dataType is how the event travels in a BufferResponse.
	dataType() wire.DataType
	appendTo(b []byte) []byte
}

// Event kinds on the wire: the first byte of an event buffer.
const (
	eventEndOfPartition    = 1
	eventEndOfData         = 2
	eventCheckpointBarrier = 3
	eventCancelCheckpoint  = 4
	eventUser              = 5
)

// EndOfPartition: the producer finished; no more records on the channel.
type EndOfPartition struct{}

// EndOfData: the producer has emitted its last record (Flink's EndOfData).
// The consumer answers, once it has processed everything, with
// InputGate.AckAllRecordsProcessed.
type EndOfData struct{}

// CheckpointBarrier separates the records before and after checkpoint ID.
// An aligned barrier blocks its subpartition until the consumer calls
// InputGate.ResumeConsumption for the channel; an unaligned one is a
// priority event that overtakes queued data and does not block.
type CheckpointBarrier struct {
	ID        int64
	Timestamp int64 // producer's wall clock, Unix nanoseconds
	Unaligned bool
}

// CancelCheckpoint aborts checkpoint ID downstream.
type CancelCheckpoint struct{ ID int64 }

// UserEvent is an application event sent in order with the records.
type UserEvent struct{ Payload []byte }

func (EndOfPartition) dataType() wire.DataType   { return wire.EventBuffer }
func (EndOfData) dataType() wire.DataType        { return wire.EventBuffer }
func (CancelCheckpoint) dataType() wire.DataType { return wire.PriorityEventBuffer }
func (UserEvent) dataType() wire.DataType        { return wire.EventBuffer }
func (b CheckpointBarrier) dataType() wire.DataType {
	if b.Unaligned {
		return wire.PriorityBarrier
	}
	return wire.AlignedBarrier
}

func (EndOfPartition) appendTo(b []byte) []byte { return append(b, eventEndOfPartition) }
func (EndOfData) appendTo(b []byte) []byte      { return append(b, eventEndOfData) }
func (e CheckpointBarrier) appendTo(b []byte) []byte {
	b = append(b, eventCheckpointBarrier)
	b = binary.BigEndian.AppendUint64(b, uint64(e.ID))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp))
	if e.Unaligned {
		return append(b, 1)
	}
	return append(b, 0)
}
func (e CancelCheckpoint) appendTo(b []byte) []byte {
	return binary.BigEndian.AppendUint64(append(b, eventCancelCheckpoint), uint64(e.ID))
}
func (e UserEvent) appendTo(b []byte) []byte { return append(append(b, eventUser), e.Payload...) }

// encodeEvent serialises ev into an unpooled buffer: events are rare and
// small, and must not wait for (or take) credit-backed memory.
func encodeEvent(ev Event) Buffer {
	return NewUnpooledBuffer(ev.appendTo(make([]byte, 0, 24)), ev.dataType())
}

// EventDecodeError reports a malformed event buffer.
type EventDecodeError struct {
	Reason string
}

func (e *EventDecodeError) Error() string { return "exchange: bad event: " + e.Reason }
func (e *EventDecodeError) Unwrap() error { return ErrProtocol }

// decodeEvent parses an event buffer's bytes (copying what it keeps).
func decodeEvent(b []byte, dt wire.DataType) (Event, error) {
	if len(b) == 0 {
		return nil, &EventDecodeError{Reason: "empty"}
	}
	body := b[1:]
	switch b[0] {
	case eventEndOfPartition:
		if len(body) != 0 {
			return nil, &EventDecodeError{Reason: "EndOfPartition with a body"}
		}
		return EndOfPartition{}, nil
	case eventEndOfData:
		if len(body) != 0 {
			return nil, &EventDecodeError{Reason: "EndOfData with a body"}
		}
		return EndOfData{}, nil
	case eventCheckpointBarrier:
		if len(body) != 17 || body[16] > 1 {
			return nil, &EventDecodeError{Reason: fmt.Sprintf("CheckpointBarrier body of %d bytes", len(body))}
		}
		ev := CheckpointBarrier{
			ID:        int64(binary.BigEndian.Uint64(body)),
			Timestamp: int64(binary.BigEndian.Uint64(body[8:])),
			Unaligned: body[16] == 1,
		}
		if ev.dataType() != dt {
			return nil, &EventDecodeError{Reason: fmt.Sprintf("CheckpointBarrier (unaligned=%v) sent as %v", ev.Unaligned, dt)}
		}
		return ev, nil
	case eventCancelCheckpoint:
		if len(body) != 8 {
			return nil, &EventDecodeError{Reason: fmt.Sprintf("CancelCheckpoint body of %d bytes", len(body))}
		}
		return CancelCheckpoint{ID: int64(binary.BigEndian.Uint64(body))}, nil
	case eventUser:
		return UserEvent{Payload: append([]byte(nil), body...)}, nil
	}
	return nil, &EventDecodeError{Reason: fmt.Sprintf("unknown kind %d", b[0])}
}
