package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ReaderBufferSize is the size of the bufio.Reader a Reader wraps its
// source in.
const ReaderBufferSize = 64 << 10

// Reader reads frames from a byte stream (a TCP connection or a QUIC
// stream). It is not safe for concurrent use.
//
// Messages returned by Next are pointers to structs owned and reused by the
// Reader (*BufferResponse, *AddCredit, ..., *Hello): they, and any slice
// they hold (TaskEventRequest.Event), are valid only until the next call to
// Next. Steady-state reading allocates nothing, except for the message
// string of an ErrorResponse.
//
// After an error other than ErrPayloadPending, ErrNoPayload or
// ErrPayloadSize (which report misuse and change nothing) the Reader is
// broken: the stream has lost its framing, and every later call returns the
// same error.
type Reader struct {
	br   *bufio.Reader
	src  io.Reader // what br reads from; ReadPayload reads payloads from it directly
	opts Options

	pending    int  // payload bytes of the last BufferResponse still unread
	hasPending bool // pending > 0
	err        error

	scratch []byte // body of frames that do not fit br (only if max > ReaderBufferSize)

	// Messages returned by Next.
	bufResp  BufferResponse
	errResp  ErrorResponse
	partReq  PartitionRequest
	taskEv   TaskEventRequest
	cancel   CancelPartitionRequest
	closeReq CloseRequest
	credit   AddCredit
	resume   ResumeConsumption
	ack      AckAllUserRecordsProcessed
	backlog  BacklogAnnouncement
	bufSize  NewBufferSize
	hello    Hello
}

// NewReader returns a Reader of frames from r, which it wraps in a
// bufio.Reader of ReaderBufferSize bytes (bufio reuses r if it already is a
// large enough *bufio.Reader).
func NewReader(r io.Reader, opts Options) *Reader {
	rd := &Reader{opts: opts, src: r}
	rd.br = bufio.NewReaderSize(r, ReaderBufferSize)
	return rd
}

// MinReaderBufferSize is the smallest buffer NewReaderSize uses: room for
// any frame header plus a BufferResponse header.
const MinReaderBufferSize = 64

// NewReaderSize is NewReader with a read buffer of size bytes (at least
// MinReaderBufferSize). A transport with one Reader per stream (QUIC, with
// thousands of streams) trades a few more short reads for memory; payloads
// larger than the buffer are read into the caller's buffer directly.
func NewReaderSize(r io.Reader, opts Options, size int) *Reader {
	rd := &Reader{opts: opts, src: r}
	rd.br = bufio.NewReaderSize(r, max(size, MinReaderBufferSize))
	return rd
}

// Reset discards the Reader's state and makes it read from r.
func (r *Reader) Reset(src io.Reader) {
	r.br.Reset(src)
	r.src = src
	r.pending, r.hasPending, r.err = 0, false, nil
}

// Options returns the options the Reader was created with.
func (r *Reader) Options() Options { return r.opts }

// Buffered returns the number of bytes read from the source but not yet
// consumed (including bytes of a pending payload).
func (r *Reader) Buffered() int { return r.br.Buffered() }

// PendingPayload returns the number of payload bytes of the last
// BufferResponse that must be read or discarded before Next (0 if none).
func (r *Reader) PendingPayload() int { return r.pending }

// Next reads the next frame and returns its message.
//
// For every message but BufferResponse it reads and decodes the whole
// frame. For a BufferResponse it reads the header only; if its Size is
// positive, the caller must then call ReadPayload or DiscardPayload before
// calling Next again (Next returns ErrPayloadPending otherwise).
//
// The returned message is owned by the Reader and valid until the next call
// to Next. At a clean end of stream (between frames) Next returns io.EOF;
// an end of stream inside a frame is ErrTruncated. Bad input yields an
// error wrapping ErrProtocol; errors of the source are returned as they
// are.
func (r *Reader) Next() (Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.hasPending {
		return nil, fmt.Errorf("%w: %d bytes of BufferResponse payload unread", ErrPayloadPending, r.pending)
	}
	m, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return m, nil
}

func (r *Reader) next() (Message, error) {
	hdr, err := r.br.Peek(HeaderSize)
	if err != nil {
		if err == io.EOF && len(hdr) == 0 {
			return nil, io.EOF
		}
		return nil, r.readErr(err, "frame header")
	}
	length, id, err := ParseHeader(hdr, r.opts)
	if err != nil {
		return nil, err
	}
	_, _ = r.br.Discard(HeaderSize) // peeked: cannot fail
	bodyLen := length - HeaderSize

	if id == IDBufferResponse {
		return r.nextBufferResponse(bodyLen)
	}

	body, err := r.readBody(bodyLen, id)
	if err != nil {
		return nil, err
	}
	return r.decode(id, body)
}

func (r *Reader) nextBufferResponse(bodyLen int) (Message, error) {
	sm := r.opts.StreamMode
	n := recvLen(sm) + bufferResponseFixed
	if bodyLen < n {
		return nil, truncErr(IDBufferResponse, bodyLen, n)
	}
	b, err := r.br.Peek(n)
	if err != nil {
		return nil, r.readErr(err, "BufferResponse header")
	}
	m, err := DecodeBufferResponse(b, sm)
	if err != nil {
		return nil, err
	}
	if int(m.Size) != bodyLen-n {
		return nil, &FieldError{Msg: IDBufferResponse, Field: "size", Value: int64(m.Size), Err: ErrInvalidField,
			Reason: fmt.Sprintf("frame holds %d payload bytes", bodyLen-n)}
	}
	_, _ = r.br.Discard(n)
	r.bufResp = m
	r.pending = int(m.Size)
	r.hasPending = m.Size > 0
	return &r.bufResp, nil
}

// readBody returns the next n bytes, aliasing the bufio buffer when they
// fit it, and consumes them.
func (r *Reader) readBody(n int, id MsgID) ([]byte, error) {
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, r.readErr(err, id.String()+" body")
		}
		_, _ = r.br.Discard(n)
		return b, nil
	}
	// Grow in steps, from the reader's own buffer size, so that memory
	// follows the bytes that arrived, not the claim: a stream whose header
	// claims a huge frame and sends 45 bytes costs about one buffer, not
	// the claim (on QUIC a node has a reader per stream).
	r.scratch = r.scratch[:0]
	for len(r.scratch) < n {
		step := min(n-len(r.scratch), max(r.br.Size(), len(r.scratch)))
		off := len(r.scratch)
		r.scratch = append(r.scratch, make([]byte, step)...)
		if _, err := io.ReadFull(r.br, r.scratch[off:]); err != nil {
			return nil, r.readErr(err, id.String()+" body")
		}
	}
	return r.scratch, nil
}

func (r *Reader) decode(id MsgID, body []byte) (Message, error) {
	sm := r.opts.StreamMode
	var err error
	switch id {
	case IDErrorResponse:
		if r.errResp, err = DecodeErrorResponse(body, sm); err == nil {
			return &r.errResp, nil
		}
	case IDPartitionRequest:
		if r.partReq, err = DecodePartitionRequest(body, sm); err == nil {
			return &r.partReq, nil
		}
	case IDTaskEventRequest:
		if r.taskEv, err = DecodeTaskEventRequest(body, sm); err == nil {
			return &r.taskEv, nil
		}
	case IDCancelPartitionRequest:
		if r.cancel, err = DecodeCancelPartitionRequest(body, sm); err == nil {
			return &r.cancel, nil
		}
	case IDCloseRequest:
		if r.closeReq, err = DecodeCloseRequest(body, sm); err == nil {
			return &r.closeReq, nil
		}
	case IDAddCredit:
		if r.credit, err = DecodeAddCredit(body, sm); err == nil {
			return &r.credit, nil
		}
	case IDResumeConsumption:
		if r.resume, err = DecodeResumeConsumption(body, sm); err == nil {
			return &r.resume, nil
		}
	case IDAckAllUserRecordsProcessed:
		if r.ack, err = DecodeAckAllUserRecordsProcessed(body, sm); err == nil {
			return &r.ack, nil
		}
	case IDBacklogAnnouncement:
		if r.backlog, err = DecodeBacklogAnnouncement(body, sm); err == nil {
			return &r.backlog, nil
		}
	case IDNewBufferSize:
		if r.bufSize, err = DecodeNewBufferSize(body, sm); err == nil {
			return &r.bufSize, nil
		}
	case IDHello:
		if r.hello, err = DecodeHello(body, sm); err == nil {
			return &r.hello, nil
		}
	default:
		err = fmt.Errorf("%w: %d", ErrUnknownMessage, uint8(id))
	}
	return nil, err
}

// ReadPayload reads the pending BufferResponse payload into dst, whose
// length must be exactly the pending Size (ErrPayloadSize otherwise). Large
// payloads are read straight from the source into dst. With no payload
// pending, an empty dst is a no-op.
func (r *Reader) ReadPayload(dst []byte) error {
	if r.err != nil {
		return r.err
	}
	if len(dst) != r.pending {
		if !r.hasPending {
			return fmt.Errorf("%w: got a %d-byte buffer", ErrNoPayload, len(dst))
		}
		return fmt.Errorf("%w: buffer is %d bytes, payload is %d", ErrPayloadSize, len(dst), r.pending)
	}
	if !r.hasPending {
		return nil
	}
	r.pending, r.hasPending = 0, false
	// The buffered part first, then the rest straight from the source:
	// bufio reads into dst directly only for reads of at least its own
	// size, so io.ReadFull(r.br, dst) would copy every payload of less
	// than ReaderBufferSize through the buffer.
	n := 0
	if b := r.br.Buffered(); b > 0 {
		n, _ = r.br.Read(dst[:min(b, len(dst))]) // from the buffer: cannot fail
	}
	if n < len(dst) {
		if _, err := io.ReadFull(r.src, dst[n:]); err != nil {
			r.err = r.readErr(err, "BufferResponse payload")
			return r.err
		}
	}
	return nil
}

// DiscardPayload skips the pending BufferResponse payload; with none
// pending it is a no-op.
func (r *Reader) DiscardPayload() error {
	if r.err != nil {
		return r.err
	}
	if !r.hasPending {
		return nil
	}
	n := r.pending
	r.pending, r.hasPending = 0, false
	if _, err := r.br.Discard(n); err != nil {
		r.err = r.readErr(err, "BufferResponse payload")
		return r.err
	}
	return nil
}

// readErr maps an error met inside a frame: an end of stream becomes
// ErrTruncated (also wrapping io.ErrUnexpectedEOF); other errors of the
// source are returned unchanged.
func (r *Reader) readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: stream ended inside %s (%w)", ErrTruncated, what, io.ErrUnexpectedEOF)
	}
	return err
}
