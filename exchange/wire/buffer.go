package wire

import (
	"fmt"
	"strconv"
)

// DataType is the kind of buffer a BufferResponse carries (Flink's
// Buffer.DataType, restricted to what travels over the network).
type DataType uint8

// Data types.
const (
	DataBuffer          DataType = 0 // records
	EventBuffer         DataType = 1 // an in-band event (EndOfPartition, ...)
	PriorityEventBuffer DataType = 2 // an event that overtakes queued data
	AlignedBarrier      DataType = 3 // aligned checkpoint barrier; blocks the subpartition until ResumeConsumption
	PriorityBarrier     DataType = 4 // unaligned checkpoint barrier, overtakes queued data
)

var dataTypeNames = [...]string{
	DataBuffer:          "DataBuffer",
	EventBuffer:         "EventBuffer",
	PriorityEventBuffer: "PriorityEventBuffer",
	AlignedBarrier:      "AlignedBarrier",
	PriorityBarrier:     "PriorityBarrier",
}

func (t DataType) String() string {
	if t.Valid() {
		return dataTypeNames[t]
	}
	return "DataType(" + strconv.Itoa(int(t)) + ")"
}

// Valid reports whether t is one of the DataType constants.
func (t DataType) Valid() bool { return t <= PriorityBarrier }

// IsEvent reports whether t carries an event (everything but DataBuffer).
// Events need no credit.
func (t DataType) IsEvent() bool { return t != DataBuffer }

// IsPriority reports whether t overtakes queued data (PriorityEventBuffer,
// PriorityBarrier).
func (t DataType) IsPriority() bool { return t == PriorityEventBuffer || t == PriorityBarrier }

// bufferResponseFixed is the BufferResponse body header without receiverId:
// seq i32 | backlog i32 | dataType u8 | compressed u8 | size i32.
const bufferResponseFixed = 4 + 4 + 1 + 1 + 4

// BufferResponseHeaderLen returns the length of a BufferResponse frame
// without its payload: BufferResponseHeaderMax in TCP mode, 16 bytes less in
// stream mode.
func BufferResponseHeaderLen(streamMode bool) int {
	return HeaderSize + recvLen(streamMode) + bufferResponseFixed
}

// BufferResponse is the header of a frame carrying one network buffer from
// producer to consumer. The Size payload bytes follow the header in the same
// frame and are not part of the struct: AppendFrame writes the header only,
// Reader.Next reads the header only (then ReadPayload / DiscardPayload).
//
// Body: [receiverId 16] | sequence i32 | backlog i32 | dataType u8 |
// compressed u8 | size i32 | payload (size bytes).
type BufferResponse struct {
	ReceiverID ID       // omitted in stream mode
	Sequence   int32    // per-channel sequence number; any value (it wraps)
	Backlog    int32    // buffers queued at the sender; >= 0
	DataType   DataType // must be Valid
	Compressed bool     // payload is compressed
	Size       int32    // payload length; >= 0
}

func (BufferResponse) ID() MsgID { return IDBufferResponse }

// AppendBody appends the body without the payload.
func (m BufferResponse) AppendBody(dst []byte, streamMode bool) []byte {
	if !streamMode {
		dst = appendID(dst, &m.ReceiverID)
	}
	dst = appendI32(dst, m.Sequence)
	dst = appendI32(dst, m.Backlog)
	dst = append(dst, byte(m.DataType), boolByte(m.Compressed))
	return appendI32(dst, m.Size)
}

func (m BufferResponse) validate() error {
	if m.Backlog < 0 {
		return fieldErr(IDBufferResponse, "backlog", int64(m.Backlog), "must be >= 0")
	}
	if !m.DataType.Valid() {
		return fieldErr(IDBufferResponse, "dataType", int64(m.DataType), "unknown data type")
	}
	if m.Size < 0 {
		return fieldErr(IDBufferResponse, "size", int64(m.Size), "must be >= 0")
	}
	return nil
}

// DecodeBufferResponse decodes the header at the start of a BufferResponse
// frame body. Bytes after the header are taken as (a prefix of) the payload:
// at most Size of them are allowed (ErrTrailingBytes otherwise). Use
// SplitBufferResponse to require the whole payload.
func DecodeBufferResponse(body []byte, streamMode bool) (BufferResponse, error) {
	var m BufferResponse
	n := recvLen(streamMode) + bufferResponseFixed
	if len(body) < n {
		return m, truncErr(IDBufferResponse, len(body), n)
	}
	b := body
	if !streamMode {
		copy(m.ReceiverID[:], b)
		b = b[16:]
	}
	m.Sequence = getI32(b)
	m.Backlog = getI32(b[4:])
	m.DataType = DataType(b[8])
	if b[9] > 1 {
		return BufferResponse{}, fieldErr(IDBufferResponse, "compressed", int64(b[9]), "must be 0 or 1")
	}
	m.Compressed = b[9] == 1
	m.Size = getI32(b[10:])
	if err := m.validate(); err != nil {
		return BufferResponse{}, err
	}
	if rest := len(body) - n; rest > int(m.Size) {
		return BufferResponse{}, fmt.Errorf("%w: BufferResponse carries %d payload bytes, size is %d", ErrTrailingBytes, rest, m.Size)
	}
	return m, nil
}

// SplitBufferResponse decodes a whole BufferResponse frame body and returns
// its header and payload (aliasing body). The payload must be exactly Size
// bytes.
func SplitBufferResponse(body []byte, streamMode bool) (BufferResponse, []byte, error) {
	m, err := DecodeBufferResponse(body, streamMode)
	if err != nil {
		return m, nil, err
	}
	n := recvLen(streamMode) + bufferResponseFixed
	if len(body)-n != int(m.Size) {
		return BufferResponse{}, nil, fmt.Errorf("%w: BufferResponse carries %d payload bytes, size is %d", ErrTruncated, len(body)-n, m.Size)
	}
	return m, body[n:], nil
}
