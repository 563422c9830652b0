package quictransport

import (
	"errors"
	"fmt"
	"io"

	"github.com/qexchange/qexchange/exchange/wire"
)

// bufferResponseFixed is the BufferResponse body without payload in
// stream mode: seq i32 | backlog i32 | dataType u8 | compressed u8 | size i32.
const bufferResponseFixed = 4 + 4 + 1 + 1 + 4

// frameReader reads the frames of one stream with the wire codec's
// validation (wire.ParseHeader, wire.DecodeX) but without a read buffer:
// a frame header, a BufferResponse header and a control message body are
// read with exact-length reads, and a BufferResponse payload straight into
// the caller's buffer. wire.Reader would do the same behind a 64 KiB
// bufio.Reader, which is 256 MiB per side at 4096 channels (one reader per
// stream); QUIC streams are already buffered by quic-go, so exact reads
// cost a few short Read calls per frame and no memory.
//
// Messages returned by next are owned by the reader and valid until the
// next call. Steady-state reading allocates nothing (except the message of
// an ErrorResponse, and body growth up to the maximum frame size).
type frameReader struct {
	src     io.Reader
	opts    wire.Options
	hdr     [wire.HeaderSize + bufferResponseFixed]byte
	body    []byte
	pending int // unread payload bytes of the last BufferResponse
	err     error

	bufResp wire.BufferResponse
	errResp wire.ErrorResponse
	partReq wire.PartitionRequest
	taskEv  wire.TaskEventRequest
	cancel  wire.CancelPartitionRequest
	closeRq wire.CloseRequest
	credit  wire.AddCredit
	resume  wire.ResumeConsumption
	ack     wire.AckAllUserRecordsProcessed
	backlog wire.BacklogAnnouncement
	bufSize wire.NewBufferSize
	hello   wire.Hello
}

func newFrameReader(src io.Reader, opts wire.Options) *frameReader {
	return &frameReader{src: src, opts: opts}
}

// errTruncated is an end of stream inside a frame.
func truncated(what string) error {
	return fmt.Errorf("%w: stream ended inside %s: %w", wire.ErrTruncated, what, io.ErrUnexpectedEOF)
}

func (r *frameReader) readFull(b []byte, what string) error {
	if _, err := io.ReadFull(r.src, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return truncated(what)
		}
		return err
	}
	return nil
}

// next reads the next frame. For a BufferResponse it reads the header
// only; the caller must then call readPayload with exactly Size bytes. A
// clean end of stream between frames is io.EOF. Bad input is an error
// wrapping wire.ErrProtocol; stream errors are returned as they are.
// After an error the reader keeps returning it.
func (r *frameReader) next(accept func(wire.MsgID) bool) (wire.Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.pending > 0 {
		return nil, fmt.Errorf("%w: %d bytes of BufferResponse payload unread", wire.ErrPayloadPending, r.pending)
	}
	m, err := r.readFrame(accept)
	if err != nil {
		r.err = err
	}
	return m, err
}

func (r *frameReader) readFrame(accept func(wire.MsgID) bool) (wire.Message, error) {
	h := r.hdr[:wire.HeaderSize]
	n, err := io.ReadFull(r.src, h)
	if err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, truncated("a frame header")
		}
		return nil, err
	}
	length, id, err := wire.ParseHeader(h, r.opts)
	if err != nil {
		return nil, err
	}
	if accept != nil && !accept(id) {
		return nil, fmt.Errorf("%w: unexpected %s on a channel stream in this direction", wire.ErrUnknownMessage, id)
	}
	bodyLen := length - wire.HeaderSize
	if id == wire.IDBufferResponse {
		if bodyLen < bufferResponseFixed {
			return nil, fmt.Errorf("%w: BufferResponse of %d body bytes, want at least %d", wire.ErrTruncated, bodyLen, bufferResponseFixed)
		}
		b := r.hdr[wire.HeaderSize:]
		if err := r.readFull(b, "a BufferResponse header"); err != nil {
			return nil, err
		}
		m, err := wire.DecodeBufferResponse(b, r.opts.StreamMode)
		if err != nil {
			return nil, err
		}
		if int(m.Size) != bodyLen-bufferResponseFixed {
			return nil, &wire.FieldError{Msg: wire.IDBufferResponse, Field: "size", Value: int64(m.Size), Err: wire.ErrInvalidField,
				Reason: fmt.Sprintf("frame holds %d payload bytes", bodyLen-bufferResponseFixed)}
		}
		r.bufResp = m
		r.pending = int(m.Size)
		return &r.bufResp, nil
	}
	if cap(r.body) < bodyLen {
		r.body = make([]byte, bodyLen, max(bodyLen, 64))
	}
	body := r.body[:bodyLen]
	if err := r.readFull(body, "a "+id.String()+" frame"); err != nil {
		return nil, err
	}
	return r.decode(id, body)
}

func (r *frameReader) decode(id wire.MsgID, body []byte) (wire.Message, error) {
	sm := r.opts.StreamMode
	var err error
	switch id {
	case wire.IDErrorResponse:
		r.errResp, err = wire.DecodeErrorResponse(body, sm)
		return &r.errResp, err
	case wire.IDPartitionRequest:
		r.partReq, err = wire.DecodePartitionRequest(body, sm)
		return &r.partReq, err
	case wire.IDTaskEventRequest:
		r.taskEv, err = wire.DecodeTaskEventRequest(body, sm)
		return &r.taskEv, err
	case wire.IDCancelPartitionRequest:
		r.cancel, err = wire.DecodeCancelPartitionRequest(body, sm)
		return &r.cancel, err
	case wire.IDCloseRequest:
		r.closeRq, err = wire.DecodeCloseRequest(body, sm)
		return &r.closeRq, err
	case wire.IDAddCredit:
		r.credit, err = wire.DecodeAddCredit(body, sm)
		return &r.credit, err
	case wire.IDResumeConsumption:
		r.resume, err = wire.DecodeResumeConsumption(body, sm)
		return &r.resume, err
	case wire.IDAckAllUserRecordsProcessed:
		r.ack, err = wire.DecodeAckAllUserRecordsProcessed(body, sm)
		return &r.ack, err
	case wire.IDBacklogAnnouncement:
		r.backlog, err = wire.DecodeBacklogAnnouncement(body, sm)
		return &r.backlog, err
	case wire.IDNewBufferSize:
		r.bufSize, err = wire.DecodeNewBufferSize(body, sm)
		return &r.bufSize, err
	case wire.IDHello:
		r.hello, err = wire.DecodeHello(body, sm)
		return &r.hello, err
	}
	// ParseHeader rejects unknown ids; this is a guard.
	return nil, fmt.Errorf("%w: %d", wire.ErrUnknownMessage, id)
}

// readPayload reads the pending BufferResponse payload into dst, whose
// length must be the pending size.
func (r *frameReader) readPayload(dst []byte) error {
	if r.err != nil {
		return r.err
	}
	if len(dst) != r.pending {
		return fmt.Errorf("%w: buffer of %d bytes for a payload of %d", wire.ErrPayloadSize, len(dst), r.pending)
	}
	r.pending = 0
	if err := r.readFull(dst, "a BufferResponse payload"); err != nil {
		r.err = err
		return err
	}
	return nil
}
