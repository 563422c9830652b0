// Package wire is the frame codec shared by the TCP and QUIC transports: a
// Go rendering of Flink's NettyMessage protocol plus a version handshake.
// It depends on the standard library only.
//
// # Frames
//
// Every message travels in one frame, big endian:
//
//	length u32 | magic u32 | id u8 | body
//
// length counts the whole frame, the 9-byte header (HeaderSize) included;
// magic is Magic (0xBADC0FFE); id is a MsgID. Frames longer than the
// configured maximum (Options.MaxFrameSize, set by transports to
// MaxFrameSizeFor(segmentSize)) are rejected before their body is read.
//
// The messages and their bodies ([receiverId 16] is omitted in stream
// mode, see below):
//
//	BufferResponse     0  [receiverId 16] | seq i32 | backlog i32 | dataType u8 | compressed u8 | size i32 | payload
//	ErrorResponse      1  fatal u8 | [receiverId 16, only if !fatal] | code u16 | msgLen u16 | msg
//	PartitionRequest   2  partitionId 16 | subpartition i32 | [receiverId 16] | credit i32
//	TaskEventRequest   3  partitionId 16 | [receiverId 16] | len u32 | event
//	CancelPartitionRequest 4  [receiverId 16]
//	CloseRequest       5  (empty)
//	AddCredit          6  [receiverId 16] | credit i32
//	ResumeConsumption  7  [receiverId 16]
//	AckAllUserRecordsProcessed 8  [receiverId 16]
//	BacklogAnnouncement 9 [receiverId 16] | backlog i32
//	NewBufferSize     10  [receiverId 16] | bufferSize i32
//	Hello             64  version u16 | features u32 | maxFrameSize u32 | "qxchange"
//
// Both sides open every connection (TCP) or stream (QUIC) with a Hello
// (NewHello) and check the peer's with CheckHello, so that incompatible
// peers fail with ErrVersionMismatch or ErrNotOurProtocol instead of
// misreading each other.
//
// # Modes
//
// Options.StreamMode false (TCP): one connection multiplexes many input
// channels, and every channel-scoped message carries the receiverId (the
// consumer's input channel id) that the receiving side demultiplexes on.
// StreamMode true (QUIC): each stream belongs to exactly one input channel,
// so the receiverId is omitted from every message and decodes as a zero ID.
// Both peers must agree on the mode.
//
// # Writing
//
// AppendFrame appends a whole frame to a caller-owned slice; reusing the
// slice and passing pointers to reused message structs allocates nothing.
// A BufferResponse is written without its payload, but its length field
// counts the payload: write the Size payload bytes right after it (e.g.
// net.Buffers{frame, payload}, a single writev), so payloads are never
// copied. AppendFrame does not validate; Validate checks a message as the
// receiving side will, including the frame size.
//
// # Reading and ownership
//
// Reader reads frames from a stream. Next returns a pointer to a message
// struct owned and reused by the Reader (*BufferResponse, *AddCredit, ...):
// it is valid only until the next call to Next, as is
// TaskEventRequest.Event, which aliases the Reader's buffer. For a
// BufferResponse, Next reads only the header; the caller then reads the
// payload straight into its own buffer with ReadPayload (or skips it with
// DiscardPayload) before calling Next again. In steady state reading
// allocates nothing.
//
// The DecodeX functions decode one message body each (the bytes after the
// frame header), validate every field, and reject trailing bytes (a
// BufferResponse body may be followed by its payload). They never panic,
// whatever the input, and are fuzzed.
//
// # Errors
//
// Every error caused by bad input wraps ErrProtocol, and also one of the
// specific sentinels: ErrBadMagic, ErrUnknownMessage, ErrFrameTooLarge,
// ErrFrameTooSmall, ErrTruncated, ErrTrailingBytes, ErrInvalidField (as a
// *FieldError naming message, field and value), ErrVersionMismatch,
// ErrNotOurProtocol. Test with errors.Is and errors.As. A clean end of
// stream between frames is a bare io.EOF; an end of stream inside a frame
// is ErrTruncated (which then also wraps io.ErrUnexpectedEOF); errors of
// the underlying stream are passed through unchanged. After an error the
// stream's framing is lost: a Reader keeps returning that error, and the
// transport closes the connection (or, on QUIC, the stream). Misuse of the
// Reader (ErrPayloadPending, ErrNoPayload, ErrPayloadSize) changes no
// state. Error texts start with "wire: "; transports add the peer's name.
package wire
