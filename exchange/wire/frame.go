package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
)

// Frame header.
const (
	// Magic is the second word of every frame.
	Magic uint32 = 0xBADC0FFE
	// HeaderSize is the size of the frame header: length u32 | magic u32 |
	// id u8.
	HeaderSize = 9
)

// Frame size limits.
const (
	// DefaultMaxFrameSize is the maximum frame size when
	// Options.MaxFrameSize is 0: one 32 KiB segment plus headers.
	DefaultMaxFrameSize = 32*1024 + 64
	// MinMaxFrameSize is the smallest maximum frame size an Options can
	// have (smaller positive values are raised to it); every fixed-size
	// message fits.
	MinMaxFrameSize = 64
	// MaxMaxFrameSize is the largest maximum frame size (larger values
	// are lowered to it), so that every frame length fits an int32.
	MaxMaxFrameSize = math.MaxInt32
	// BufferResponseHeaderMax is the size of a BufferResponse frame
	// without its payload in TCP mode (frame header + receiverId + fields):
	// a frame carrying a full segment is segmentSize + BufferResponseHeaderMax
	// bytes. In stream mode the header is 16 bytes shorter.
	BufferResponseHeaderMax = HeaderSize + bufferResponseFixed + 16
	// MaxErrorMessageLen is the longest ErrorResponse message in bytes;
	// longer messages are truncated on encode and rejected on decode.
	MaxErrorMessageLen = 4096
	// MaxErrorFrameSize is the size of the largest ErrorResponse frame.
	MaxErrorFrameSize = HeaderSize + errorResponseFixed + 16 + MaxErrorMessageLen
)

// MaxFrameSizeFor returns the maximum frame size needed for a network
// segment (buffer) size: a BufferResponse carrying a full segment, i.e.
// segmentSize + BufferResponseHeaderMax, but at least MaxErrorFrameSize so
// that error messages are never cut short.
func MaxFrameSizeFor(segmentSize int) int {
	if segmentSize < 0 {
		segmentSize = 0
	}
	n := segmentSize + BufferResponseHeaderMax
	if n < MaxErrorFrameSize {
		n = MaxErrorFrameSize
	}
	if n > MaxMaxFrameSize || n < 0 {
		n = MaxMaxFrameSize
	}
	return n
}

// Options configure the codec. Both peers of a connection (or stream) must
// use the same StreamMode.
type Options struct {
	// StreamMode is true on QUIC, where each stream carries exactly one
	// input channel: the 16-byte receiverId is then omitted from every
	// message that has one (decoded messages carry a zero ReceiverID).
	// False on TCP, where one connection multiplexes many channels.
	StreamMode bool
	// MaxFrameSize is the largest frame length accepted by ParseHeader and
	// Reader. 0 (or negative) means DefaultMaxFrameSize; other values are
	// clamped to [MinMaxFrameSize, MaxMaxFrameSize]. Transports set it to
	// MaxFrameSizeFor(segmentSize).
	MaxFrameSize int
}

// EffectiveMaxFrameSize returns the maximum frame size in force for o (see
// Options.MaxFrameSize).
func (o Options) EffectiveMaxFrameSize() int {
	switch n := o.MaxFrameSize; {
	case n <= 0:
		return DefaultMaxFrameSize
	case n < MinMaxFrameSize:
		return MinMaxFrameSize
	case n > MaxMaxFrameSize:
		return MaxMaxFrameSize
	default:
		return n
	}
}

// MsgID is the message id in a frame header (Flink's NettyMessage ids, plus
// Hello).
type MsgID uint8

// Message ids.
const (
	IDBufferResponse             MsgID = 0
	IDErrorResponse              MsgID = 1
	IDPartitionRequest           MsgID = 2
	IDTaskEventRequest           MsgID = 3
	IDCancelPartitionRequest     MsgID = 4
	IDCloseRequest               MsgID = 5
	IDAddCredit                  MsgID = 6
	IDResumeConsumption          MsgID = 7
	IDAckAllUserRecordsProcessed MsgID = 8
	IDBacklogAnnouncement        MsgID = 9
	IDNewBufferSize              MsgID = 10
	IDHello                      MsgID = 64
)

var msgNames = [...]string{
	IDBufferResponse:             "BufferResponse",
	IDErrorResponse:              "ErrorResponse",
	IDPartitionRequest:           "PartitionRequest",
	IDTaskEventRequest:           "TaskEventRequest",
	IDCancelPartitionRequest:     "CancelPartitionRequest",
	IDCloseRequest:               "CloseRequest",
	IDAddCredit:                  "AddCredit",
	IDResumeConsumption:          "ResumeConsumption",
	IDAckAllUserRecordsProcessed: "AckAllUserRecordsProcessed",
	IDBacklogAnnouncement:        "BacklogAnnouncement",
	IDNewBufferSize:              "NewBufferSize",
}

// Valid reports whether id is a known message id.
func (id MsgID) Valid() bool { return id <= IDNewBufferSize || id == IDHello }

func (id MsgID) String() string {
	if int(id) < len(msgNames) {
		return msgNames[id]
	}
	if id == IDHello {
		return "Hello"
	}
	return "MsgID(" + strconv.Itoa(int(id)) + ")"
}

// Message is implemented by every message type (by the value type; the
// pointer type therefore implements it too). Reader.Next returns pointers,
// e.g. *BufferResponse.
type Message interface {
	// ID returns the message id of the frame carrying the message.
	ID() MsgID
	// AppendBody appends the encoded body (everything after the frame
	// header; for a BufferResponse, everything but the payload) to dst.
	// It does not validate field values.
	AppendBody(dst []byte, streamMode bool) []byte
}

// ParseHeader parses and validates a frame header: b must hold at least
// HeaderSize bytes (ErrTruncated otherwise). It checks the magic
// (ErrBadMagic), that HeaderSize <= length <= opts' maximum frame size
// (ErrFrameTooSmall, ErrFrameTooLarge) and that the id is known
// (ErrUnknownMessage). length is the length of the whole frame, header
// included.
func ParseHeader(b []byte, opts Options) (length int, id MsgID, err error) {
	if len(b) < HeaderSize {
		return 0, 0, fmt.Errorf("%w: frame header is %d bytes, need %d", ErrTruncated, len(b), HeaderSize)
	}
	if m := binary.BigEndian.Uint32(b[4:]); m != Magic {
		return 0, 0, fmt.Errorf("%w: got %#08x, want %#08x", ErrBadMagic, m, Magic)
	}
	n := binary.BigEndian.Uint32(b)
	if n < HeaderSize {
		return 0, 0, fmt.Errorf("%w: length %d < header size %d", ErrFrameTooSmall, n, HeaderSize)
	}
	if lim := opts.EffectiveMaxFrameSize(); uint64(n) > uint64(lim) {
		return 0, 0, fmt.Errorf("%w: length %d > maximum %d", ErrFrameTooLarge, n, lim)
	}
	id = MsgID(b[8])
	if !id.Valid() {
		return 0, 0, fmt.Errorf("%w: %d", ErrUnknownMessage, b[8])
	}
	return int(n), id, nil
}

// AppendFrame appends a whole frame carrying m (header and body) to dst and
// returns the extended slice. It does not validate m (see Validate).
//
// For a BufferResponse it appends the header and body WITHOUT the payload,
// but the frame's length field counts the payload (Size bytes): the caller
// must write exactly Size payload bytes right after the returned bytes,
// e.g. with net.Buffers{frame, payload}.WriteTo(conn) (writev).
//
// An ErrorResponse's message is cut (at a UTF-8 boundary) to
// MaxErrorMessageLen bytes and so that the frame fits opts'
// maximum frame size.
//
// To append without allocating, pass a pointer to a reused message
// (AppendFrame(buf[:0], &hdr, opts)); a value converted to Message may be
// moved to the heap.
func AppendFrame(dst []byte, m Message, opts Options) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0xBA, 0xDC, 0x0F, 0xFE, byte(m.ID()))
	extra := 0
	switch v := m.(type) {
	case *BufferResponse:
		extra = payloadLen(v.Size)
		dst = v.AppendBody(dst, opts.StreamMode)
	case BufferResponse:
		extra = payloadLen(v.Size)
		dst = v.AppendBody(dst, opts.StreamMode)
	case *ErrorResponse:
		dst = v.appendBody(dst, opts.StreamMode, errorMsgRoom(v.Fatal, opts))
	case ErrorResponse:
		dst = v.appendBody(dst, opts.StreamMode, errorMsgRoom(v.Fatal, opts))
	default:
		dst = m.AppendBody(dst, opts.StreamMode)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start+extra))
	return dst
}

func payloadLen(size int32) int {
	if size < 0 {
		return 0
	}
	return int(size)
}

// FrameLen returns the length of the frame AppendFrame writes for m,
// including a BufferResponse's payload. Compare it with the peer's maximum
// frame size before sending variable-size messages (TaskEventRequest).
func FrameLen(m Message, opts Options) int {
	switch v := m.(type) {
	case *BufferResponse:
		return BufferResponseHeaderLen(opts.StreamMode) + payloadLen(v.Size)
	case BufferResponse:
		return BufferResponseHeaderLen(opts.StreamMode) + payloadLen(v.Size)
	case *ErrorResponse:
		return HeaderSize + v.bodyLen(opts.StreamMode, errorMsgRoom(v.Fatal, opts))
	case ErrorResponse:
		return HeaderSize + v.bodyLen(opts.StreamMode, errorMsgRoom(v.Fatal, opts))
	case *TaskEventRequest:
		return HeaderSize + taskEventFixed + recvLen(opts.StreamMode) + len(v.Event)
	case TaskEventRequest:
		return HeaderSize + taskEventFixed + recvLen(opts.StreamMode) + len(v.Event)
	}
	r := recvLen(opts.StreamMode)
	switch m.ID() {
	case IDPartitionRequest:
		return HeaderSize + 16 + 4 + r + 4
	case IDCancelPartitionRequest, IDResumeConsumption, IDAckAllUserRecordsProcessed:
		return HeaderSize + r
	case IDAddCredit, IDBacklogAnnouncement, IDNewBufferSize:
		return HeaderSize + r + 4
	case IDCloseRequest:
		return HeaderSize
	case IDHello:
		return HeaderSize + helloLen
	}
	return HeaderSize + len(m.AppendBody(nil, opts.StreamMode))
}

// Receiver returns the receiverId of m, and false when m has none (Hello,
// CloseRequest, a fatal ErrorResponse). In stream mode decoded messages
// carry a zero receiverId; the stream identifies the channel.
func Receiver(m Message) (ID, bool) {
	switch v := m.(type) {
	case *BufferResponse:
		return v.ReceiverID, true
	case BufferResponse:
		return v.ReceiverID, true
	case *ErrorResponse:
		return v.ReceiverID, !v.Fatal
	case ErrorResponse:
		return v.ReceiverID, !v.Fatal
	case *PartitionRequest:
		return v.ReceiverID, true
	case PartitionRequest:
		return v.ReceiverID, true
	case *TaskEventRequest:
		return v.ReceiverID, true
	case TaskEventRequest:
		return v.ReceiverID, true
	case *CancelPartitionRequest:
		return v.ReceiverID, true
	case CancelPartitionRequest:
		return v.ReceiverID, true
	case *AddCredit:
		return v.ReceiverID, true
	case AddCredit:
		return v.ReceiverID, true
	case *ResumeConsumption:
		return v.ReceiverID, true
	case ResumeConsumption:
		return v.ReceiverID, true
	case *AckAllUserRecordsProcessed:
		return v.ReceiverID, true
	case AckAllUserRecordsProcessed:
		return v.ReceiverID, true
	case *BacklogAnnouncement:
		return v.ReceiverID, true
	case BacklogAnnouncement:
		return v.ReceiverID, true
	case *NewBufferSize:
		return v.ReceiverID, true
	case NewBufferSize:
		return v.ReceiverID, true
	}
	return ID{}, false
}

// Validate checks m's fields as the decoder would (including a
// BufferResponse's Size against the frame limit), and that the frame
// AppendFrame writes for m fits opts' maximum frame size. It returns nil or
// an error wrapping ErrProtocol.
func Validate(m Message, opts Options) error {
	if v, ok := m.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return err
		}
	}
	if n, lim := FrameLen(m, opts), opts.EffectiveMaxFrameSize(); n > lim {
		return fmt.Errorf("%w: %s frame length %d > maximum %d", ErrFrameTooLarge, m.ID(), n, lim)
	}
	return nil
}

func recvLen(streamMode bool) int {
	if streamMode {
		return 0
	}
	return 16
}

func appendID(dst []byte, id *ID) []byte { return append(dst, id[:]...) }

func appendI32(dst []byte, v int32) []byte { return binary.BigEndian.AppendUint32(dst, uint32(v)) }

func getI32(b []byte) int32 { return int32(binary.BigEndian.Uint32(b)) }

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// DecodeBody decodes the body of a frame with message id id, dispatching to
// the DecodeX function of that message; the returned Message is a value
// (e.g. BufferResponse, not *BufferResponse). It allocates; Reader is the
// allocation-free path.
func DecodeBody(id MsgID, body []byte, streamMode bool) (Message, error) {
	var (
		m   Message
		err error
	)
	switch id {
	case IDBufferResponse:
		m, err = DecodeBufferResponse(body, streamMode)
	case IDErrorResponse:
		m, err = DecodeErrorResponse(body, streamMode)
	case IDPartitionRequest:
		m, err = DecodePartitionRequest(body, streamMode)
	case IDTaskEventRequest:
		m, err = DecodeTaskEventRequest(body, streamMode)
	case IDCancelPartitionRequest:
		m, err = DecodeCancelPartitionRequest(body, streamMode)
	case IDCloseRequest:
		m, err = DecodeCloseRequest(body, streamMode)
	case IDAddCredit:
		m, err = DecodeAddCredit(body, streamMode)
	case IDResumeConsumption:
		m, err = DecodeResumeConsumption(body, streamMode)
	case IDAckAllUserRecordsProcessed:
		m, err = DecodeAckAllUserRecordsProcessed(body, streamMode)
	case IDBacklogAnnouncement:
		m, err = DecodeBacklogAnnouncement(body, streamMode)
	case IDNewBufferSize:
		m, err = DecodeNewBufferSize(body, streamMode)
	case IDHello:
		m, err = DecodeHello(body, streamMode)
	default:
		return nil, fmt.Errorf("%w: %d", ErrUnknownMessage, uint8(id))
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}
