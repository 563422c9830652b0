package wire

import (
	"errors"
	"fmt"
	"strings"
)

// ErrProtocol is the root of every error this package returns for bad input:
// errors.Is(err, ErrProtocol) is true for all of the sentinels below and for
// every error wrapping them, including *FieldError.
var ErrProtocol = errors.New("wire: protocol error")

// protoSentinel is a sentinel error that wraps ErrProtocol.
type protoSentinel struct{ msg string }

func (e *protoSentinel) Error() string { return e.msg }
func (e *protoSentinel) Unwrap() error { return ErrProtocol }

func sentinel(msg string) error { return &protoSentinel{msg: msg} }

// Sentinel errors. Each wraps ErrProtocol. Errors returned by this package
// wrap one of them (usually with fmt.Errorf("%w: detail")), so test them with
// errors.Is, never with ==.
var (
	// ErrBadMagic: the frame's magic is not Magic (the peer is not speaking
	// this protocol, or the stream lost its framing).
	ErrBadMagic = sentinel("wire: bad magic")
	// ErrUnknownMessage: the frame's message id is not one of the MsgID
	// constants.
	ErrUnknownMessage = sentinel("wire: unknown message id")
	// ErrFrameTooLarge: the frame's length is above the configured maximum.
	ErrFrameTooLarge = sentinel("wire: frame too large")
	// ErrFrameTooSmall: the frame's length is below HeaderSize.
	ErrFrameTooSmall = sentinel("wire: frame too small")
	// ErrTruncated: the frame is shorter than its fields, or the stream
	// ended in the middle of a frame (the error then also wraps
	// io.ErrUnexpectedEOF). A clean end of stream at a frame boundary is
	// reported as a bare io.EOF instead.
	ErrTruncated = sentinel("wire: truncated frame")
	// ErrTrailingBytes: the frame is longer than the message it carries.
	ErrTrailingBytes = sentinel("wire: trailing bytes after message")
	// ErrInvalidField: a field has a value outside its domain; the error
	// is a *FieldError naming the message and field.
	ErrInvalidField = sentinel("wire: invalid field")
	// ErrVersionMismatch: the peer's Hello carries another ProtocolVersion.
	ErrVersionMismatch = sentinel("wire: protocol version mismatch")
	// ErrNotOurProtocol: a Hello frame without the "qxchange" tag.
	ErrNotOurProtocol = sentinel("wire: peer does not speak the qexchange protocol")
	// ErrPayloadPending: Reader.Next was called while the payload of the
	// previous BufferResponse was neither read nor discarded.
	ErrPayloadPending = sentinel("wire: BufferResponse payload pending")
	// ErrNoPayload: Reader.ReadPayload was called with a non-empty buffer
	// while no payload is pending.
	ErrNoPayload = sentinel("wire: no BufferResponse payload pending")
	// ErrPayloadSize: Reader.ReadPayload was called with a buffer whose
	// length differs from the pending BufferResponse.Size.
	ErrPayloadSize = sentinel("wire: payload buffer length differs from BufferResponse.Size")
)

// FieldError reports a field with an invalid value. Its Error text names the
// message and the field, e.g.
//
//	wire: NewBufferSize.bufferSize = 0: invalid field: must be > 0
//
// and Unwrap returns Err (ErrInvalidField, which wraps ErrProtocol).
type FieldError struct {
	Msg    MsgID  // message the field belongs to
	Field  string // field name as in the wire layout, e.g. "credit"
	Value  int64  // offending value
	Err    error  // sentinel, ErrInvalidField
	Reason string // what the value must be, e.g. "must be > 0"
}

func (e *FieldError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "wire: %s.%s = %d", e.Msg, e.Field, e.Value)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "wire: "))
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(id MsgID, field string, v int64, reason string) error {
	return &FieldError{Msg: id, Field: field, Value: v, Err: ErrInvalidField, Reason: reason}
}

// checkLen checks that a fixed-size body has exactly n bytes.
func checkLen(id MsgID, body []byte, n int) error {
	if len(body) < n {
		return truncErr(id, len(body), n)
	}
	if len(body) > n {
		return trailingErr(id, len(body), n)
	}
	return nil
}

func truncErr(id MsgID, have, need int) error {
	return fmt.Errorf("%w: %s body is %d bytes, need at least %d", ErrTruncated, id, have, need)
}

func trailingErr(id MsgID, have, want int) error {
	return fmt.Errorf("%w: %s body is %d bytes, want %d", ErrTrailingBytes, id, have, want)
}
