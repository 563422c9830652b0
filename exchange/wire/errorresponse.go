package wire

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrorCode classifies an ErrorResponse.
type ErrorCode uint16

// Error codes.
const (
	CodeInternal             ErrorCode = 1 // unexpected failure at the sender
	CodePartitionNotFound    ErrorCode = 2 // the requested partition is not (yet) registered; retry with backoff
	CodeProtocol             ErrorCode = 3 // the sender received bad input from us
	CodeCancelled            ErrorCode = 4 // the partition or request was cancelled
	CodeDuplicateReceiver    ErrorCode = 5 // a receiverId already in use on the connection
	CodeVersionMismatch      ErrorCode = 6 // incompatible ProtocolVersion
	CodeInsufficientCapacity ErrorCode = 7 // the sender lacks buffers or other capacity
)

var codeNames = [...]string{
	CodeInternal:             "Internal",
	CodePartitionNotFound:    "PartitionNotFound",
	CodeProtocol:             "Protocol",
	CodeCancelled:            "Cancelled",
	CodeDuplicateReceiver:    "DuplicateReceiver",
	CodeVersionMismatch:      "VersionMismatch",
	CodeInsufficientCapacity: "InsufficientCapacity",
}

// Valid reports whether c is one of the Code constants.
func (c ErrorCode) Valid() bool { return c >= CodeInternal && c <= CodeInsufficientCapacity }

func (c ErrorCode) String() string {
	if c.Valid() {
		return codeNames[c]
	}
	return "ErrorCode(" + strconv.Itoa(int(c)) + ")"
}

// errorResponseFixed: fatal u8 | code u16 | msgLen u16.
const errorResponseFixed = 1 + 2 + 2

// ErrorResponse reports an error to the peer: for one channel (Fatal false,
// Flink's ErrorResponse with a receiverId) or for the whole connection
// (Fatal true, which closes it).
//
// Body: fatal u8 | [receiverId 16, only when !Fatal and not stream mode] |
// code u16 | msgLen u16 | message (UTF-8, at most MaxErrorMessageLen bytes).
type ErrorResponse struct {
	Fatal      bool
	ReceiverID ID // only on the wire when !Fatal and not in stream mode
	Code       ErrorCode
	Message    string
}

func (ErrorResponse) ID() MsgID { return IDErrorResponse }

// AppendBody appends the body. Invalid UTF-8 in Message is replaced with
// U+FFFD and the message is cut to MaxErrorMessageLen bytes at a rune
// boundary.
func (m ErrorResponse) AppendBody(dst []byte, streamMode bool) []byte {
	return m.appendBody(dst, streamMode, MaxErrorMessageLen)
}

func (m ErrorResponse) hasReceiver(streamMode bool) bool { return !m.Fatal && !streamMode }

func (m ErrorResponse) appendBody(dst []byte, streamMode bool, room int) []byte {
	msg := wireMessage(m.Message, room)
	dst = append(dst, boolByte(m.Fatal))
	if m.hasReceiver(streamMode) {
		dst = appendID(dst, &m.ReceiverID)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Code))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}

func (m ErrorResponse) bodyLen(streamMode bool, room int) int {
	n := errorResponseFixed + len(wireMessage(m.Message, room))
	if m.hasReceiver(streamMode) {
		n += 16
	}
	return n
}

// errorMsgRoom is how many message bytes fit a frame under opts.
func errorMsgRoom(fatal bool, opts Options) int {
	room := opts.EffectiveMaxFrameSize() - HeaderSize - errorResponseFixed
	if !fatal && !opts.StreamMode {
		room -= 16
	}
	return max(0, min(room, MaxErrorMessageLen))
}

// wireMessage returns s as valid UTF-8 of at most room bytes.
func wireMessage(s string, room int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= room {
		return s
	}
	i := room
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

func (m ErrorResponse) validate() error {
	if !m.Code.Valid() {
		return fieldErr(IDErrorResponse, "code", int64(m.Code), "unknown error code")
	}
	return nil
}

// DecodeErrorResponse decodes an ErrorResponse body. The message must be
// valid UTF-8 of at most MaxErrorMessageLen bytes; the code must be known.
func DecodeErrorResponse(body []byte, streamMode bool) (ErrorResponse, error) {
	var m ErrorResponse
	if len(body) < 1 {
		return m, truncErr(IDErrorResponse, len(body), errorResponseFixed)
	}
	if body[0] > 1 {
		return m, fieldErr(IDErrorResponse, "fatal", int64(body[0]), "must be 0 or 1")
	}
	m.Fatal = body[0] == 1
	n := errorResponseFixed
	if m.hasReceiver(streamMode) {
		n += 16
	}
	if len(body) < n {
		return ErrorResponse{}, truncErr(IDErrorResponse, len(body), n)
	}
	b := body[1:]
	if m.hasReceiver(streamMode) {
		copy(m.ReceiverID[:], b)
		b = b[16:]
	}
	m.Code = ErrorCode(binary.BigEndian.Uint16(b))
	if err := m.validate(); err != nil {
		return ErrorResponse{}, err
	}
	msgLen := int(binary.BigEndian.Uint16(b[2:]))
	if msgLen > MaxErrorMessageLen {
		return ErrorResponse{}, fieldErr(IDErrorResponse, "msgLen", int64(msgLen), "must be <= 4096")
	}
	if err := checkLen(IDErrorResponse, body, n+msgLen); err != nil {
		return ErrorResponse{}, err
	}
	msg := b[4:]
	if !utf8.Valid(msg) {
		return ErrorResponse{}, fieldErr(IDErrorResponse, "message", int64(msgLen), "not valid UTF-8")
	}
	m.Message = string(msg)
	return m, nil
}
