package quictransport

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Stream priorities (RFC 9218 urgency: lower is more urgent; quic-go's
// default is 3, incremental).
const (
	defaultUrgency  = 3
	priorityUrgency = 0
	// A Write longer than this cannot return before quic-go has packed
	// every byte queued before it on the stream (it keeps at most one
	// packet, protocol.MaxPacketBufferSize = 1452 bytes, buffered).
	packetBufferSize = 1500
)

// serverStream serves one input channel: the producer side of one
// stream. Its goroutine reads the consumer's messages; a writer goroutine
// sends what the Reader has.
type serverStream struct {
	t    *Transport
	str  *quic.Stream
	peer string
	log  zerolog.Logger

	reader *exchange.SubpartitionView // set before the writer starts
	wake   chan struct{}              // cap 1: the reader has something to send

	done      chan struct{} // closed when the stream is over (cancel, loss)
	doneOnce  sync.Once
	finalSent atomic.Bool // the writer sends a last ErrorResponse and FIN

	mu      sync.Mutex
	failMsg *wire.ErrorResponse // for the writer to send, then close
	failing atomic.Bool

	// Writer goroutine only.
	hdr    wire.BufferResponse
	wbuf   []byte
	urgent bool
}

func newServerStream(t *Transport, str *quic.Stream, peer string, log zerolog.Logger) *serverStream {
	return &serverStream{
		t: t, str: str, peer: peer,
		log:  log.With().Int64("stream", int64(str.StreamID())).Logger(),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		wbuf: make([]byte, 0, 64),
	}
}

// serverAccepts: the messages a consumer may send on a stream.
func serverAccepts(id wire.MsgID) bool {
	switch id {
	case wire.IDBufferResponse, wire.IDErrorResponse, wire.IDBacklogAnnouncement:
		return false
	}
	return true
}

func (s *serverStream) serve() {
	opts := s.t.opts
	fr := newFrameReader(s.str, opts)
	hello := wire.NewHello(opts)
	s.wbuf = wire.AppendFrame(s.wbuf[:0], &hello, opts)
	if _, err := s.str.Write(s.wbuf); err != nil {
		s.abort(StreamCodeCancelled)
		return
	}
	_ = s.str.SetReadDeadline(time.Now().Add(s.t.cfg.HandshakeTimeout))
	req, err := s.readRequest(fr)
	if err != nil {
		s.refuse(err)
		return
	}
	_ = s.str.SetReadDeadline(time.Time{})
	rd, err := s.t.provider.OpenView(exchange.ViewRequest{
		Partition:     exchange.PartitionID(req.PartitionID),
		Subpartition:  int(req.Subpartition),
		Receiver:      exchange.NewChannelID(),
		InitialCredit: int(req.Credit),
		Peer:          s.peer,
	}, s.onAvailable)
	if err != nil {
		s.log.Debug().Err(err).Msg("partition request refused")
		s.sendFinal(&wire.ErrorResponse{Code: exchange.WireErrorCode(err), Message: err.Error()}, StreamCodeRefused)
		return
	}
	s.reader = rd
	if !s.t.goTracked(s.writeLoop) {
		rd.Release()
		s.abort(StreamCodeCancelled)
		return
	}
	s.controlLoop(fr, exchange.PartitionID(req.PartitionID))
}

// readRequest reads the consumer's Hello and PartitionRequest.
func (s *serverStream) readRequest(fr *frameReader) (wire.PartitionRequest, error) {
	m, err := fr.next(serverAccepts)
	if err != nil {
		return wire.PartitionRequest{}, err
	}
	h, ok := m.(*wire.Hello)
	if !ok {
		return wire.PartitionRequest{}, fmt.Errorf("%w: stream starts with %s, want Hello", wire.ErrUnknownMessage, m.ID())
	}
	if err := wire.CheckHello(*h); err != nil {
		return wire.PartitionRequest{}, err
	}
	if m, err = fr.next(serverAccepts); err != nil {
		return wire.PartitionRequest{}, err
	}
	pr, ok := m.(*wire.PartitionRequest)
	if !ok {
		return wire.PartitionRequest{}, fmt.Errorf("%w: %s after Hello, want PartitionRequest", wire.ErrUnknownMessage, m.ID())
	}
	return *pr, nil
}

// refuse ends a stream whose opening failed: bad input gets an
// ErrorResponse first.
func (s *serverStream) refuse(err error) {
	code := wire.CodeProtocol
	switch {
	case errors.Is(err, wire.ErrVersionMismatch):
		code = wire.CodeVersionMismatch
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: no Hello and PartitionRequest within %v", wire.ErrTruncated, s.t.cfg.HandshakeTimeout)
	case errors.Is(err, wire.ErrProtocol):
	default:
		s.abort(StreamCodeCancelled) // the stream or connection broke
		return
	}
	perr := &exchange.ProtocolError{Peer: s.peer, Err: err}
	s.log.Warn().Err(perr).Msg("bad partition request; stream closed")
	s.sendFinal(&wire.ErrorResponse{Code: code, Message: perr.Error()}, StreamCodeProtocol)
}

// sendFinal writes a last ErrorResponse (no writer goroutine running),
// closes the send side (FIN, so the message is delivered reliably, which
// a RESET_STREAM would not guarantee) and stops reading with code.
func (s *serverStream) sendFinal(m *wire.ErrorResponse, code quic.StreamErrorCode) {
	s.finalSent.Store(true)
	s.str.CancelRead(code)
	_ = s.str.SetWriteDeadline(time.Now().Add(s.t.cfg.HandshakeTimeout))
	s.wbuf = wire.AppendFrame(s.wbuf[:0], m, s.t.opts)
	if _, err := s.str.Write(s.wbuf); err != nil {
		s.str.CancelWrite(code)
		return
	}
	_ = s.str.Close()
}

func (s *serverStream) onAvailable(*exchange.SubpartitionView) {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// controlLoop handles the consumer's messages until the stream ends.
func (s *serverStream) controlLoop(fr *frameReader, partition exchange.PartitionID) {
	rd := s.reader
	for {
		m, err := fr.next(serverAccepts)
		if err != nil {
			if errors.Is(err, wire.ErrProtocol) {
				s.protocolFailure(err)
			} else {
				s.stop() // reset by the consumer (cancel), or connection loss
			}
			return
		}
		switch m := m.(type) {
		case *wire.AddCredit:
			if err := rd.AddCredit(int(m.Credit)); err != nil {
				s.protocolFailure(err)
				return
			}
		case *wire.ResumeConsumption:
			rd.Resume()
		case *wire.AckAllUserRecordsProcessed:
			rd.AckAllRecordsProcessed()
		case *wire.TaskEventRequest:
			if exchange.PartitionID(m.PartitionID) != partition {
				s.protocolFailure(fmt.Errorf("%w: TaskEventRequest for partition %s on the stream of partition %s", wire.ErrInvalidField, exchange.PartitionID(m.PartitionID), partition))
				return
			}
			rd.TaskEvent(bytes.Clone(m.Event))
		case *wire.NewBufferSize:
			// Buffer debloating is not implemented by the model: accepted
			// (it was validated) and ignored.
		case *wire.CancelPartitionRequest, *wire.CloseRequest:
			s.stop()
			return
		default:
			s.protocolFailure(fmt.Errorf("%w: %s after the partition request", wire.ErrUnknownMessage, m.ID()))
			return
		}
	}
}

// protocolFailure fails only this stream: the reader is released, the
// writer sends an ErrorResponse naming the peer and closes, and reading
// stops with StreamCodeProtocol.
func (s *serverStream) protocolFailure(err error) {
	perr := &exchange.ProtocolError{Peer: s.peer, Err: err}
	s.log.Warn().Err(perr).Msg("bad input on a channel stream; only this stream is closed")
	s.reader.Release()
	s.mu.Lock()
	s.failMsg = &wire.ErrorResponse{Code: wire.CodeProtocol, Message: perr.Error()}
	s.mu.Unlock()
	s.failing.Store(true)
	s.str.CancelRead(StreamCodeProtocol)
	// A peer that does not read must not hold the writer forever.
	_ = s.str.SetWriteDeadline(time.Now().Add(s.t.cfg.HandshakeTimeout))
	s.onAvailable(nil)
}

// stop ends the stream after a cancel or connection loss.
func (s *serverStream) stop() {
	s.reader.Release()
	s.doneOnce.Do(func() { close(s.done) })
	if !s.finalSent.Load() {
		s.str.CancelWrite(StreamCodeCancelled)
	}
	s.str.CancelRead(StreamCodeCancelled)
}

func (s *serverStream) abort(code quic.StreamErrorCode) {
	s.str.CancelRead(code)
	s.str.CancelWrite(code)
}

// writeLoop sends what the reader has each time it becomes available.
func (s *serverStream) writeLoop() {
	rd := s.reader
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		if s.failing.Load() {
			s.writeFailure()
			return
		}
		for {
			resp := rd.Next()
			var err error
			switch resp.Kind {
			case exchange.ResponseBuffer:
				err = s.writeBuffer(resp)
			case exchange.ResponseBacklog:
				m := wire.BacklogAnnouncement{Backlog: int32(resp.Backlog)}
				err = s.write(&m)
			case exchange.ResponseError:
				rd.Release()
				s.log.Debug().Err(resp.Err).Msg("channel failed at the producer")
				s.sendFinal(&wire.ErrorResponse{Code: exchange.WireErrorCode(resp.Err), Message: resp.Err.Error()}, StreamCodeCancelled)
				return
			}
			if err != nil {
				s.stop()
				return
			}
			if s.failing.Load() {
				s.writeFailure()
				return
			}
			if !resp.More {
				break
			}
		}
	}
}

func (s *serverStream) writeFailure() {
	s.mu.Lock()
	m := s.failMsg
	s.mu.Unlock()
	s.sendFinal(m, StreamCodeProtocol)
}

func (s *serverStream) write(m wire.Message) error {
	s.wbuf = wire.AppendFrame(s.wbuf[:0], m, s.t.opts)
	_, err := s.str.Write(s.wbuf)
	return err
}

// writeBuffer writes a BufferResponse: its header, then the payload
// straight from the network buffer (quic-go copies it into packets), and
// releases the buffer. A priority event raises the stream's urgency so
// that quic-go packs it before the bulk data of other streams; the
// urgency drops back after the next write that had to wait for the
// stream's earlier bytes, the priority event among them, to be packed.
func (s *serverStream) writeBuffer(resp exchange.Response) error {
	buf := resp.Buffer
	dt := buf.DataType
	payload := buf.Bytes()
	if dt.IsPriority() && !s.urgent {
		s.str.SetPriority(priorityUrgency, true)
		s.urgent = true
	}
	s.hdr = wire.BufferResponse{Sequence: resp.Sequence, Backlog: int32(resp.Backlog), DataType: dt, Size: int32(len(payload))}
	s.wbuf = wire.AppendFrame(s.wbuf[:0], &s.hdr, s.t.opts)
	_, err := s.str.Write(s.wbuf)
	if err == nil && len(payload) > 0 {
		_, err = s.str.Write(payload)
	}
	buf.Release()
	if err == nil && s.urgent && !dt.IsPriority() && len(payload) > packetBufferSize {
		s.str.SetPriority(defaultUrgency, true)
		s.urgent = false
	}
	return err
}
