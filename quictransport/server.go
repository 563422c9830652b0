package quictransport

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Stream priorities (RFC 9218 urgency: lower is more urgent; quic-go's
// default is 3, incremental).
const (
	defaultUrgency  = 3
	priorityUrgency = 0
	// smallFrame is the largest frame (header and payload) the
	// connection's writer queues itself, without blocking, with
	// TryWriteAll: frames of several streams queued back to back leave in
	// shared packets. It is below quic-go's packet buffer
	// (protocol.MaxPacketBufferSize = 1452 bytes), whose STREAM frames
	// TryWriteAll fills without allocating.
	smallFrame = 1200
	// packetBufferSize bounds what quic-go keeps buffered of a stream's
	// Write (protocol.MaxPacketBufferSize = 1452 bytes).
	packetBufferSize = 1500
)

// connWriter is the single writer of one accepted connection: it serves
// the connection's ready streams round robin (chanproto.Scheduler) and
// queues their small frames back to back, so that quic-go packs the
// frames of several streams into one packet (with a goroutine per stream
// each flush left in its own packet). A frame that is large, or that QUIC
// flow control does not let through at once, is written by a goroutine of
// its own while the stream is held: one slow stream never stalls the
// others.
type connWriter struct {
	t     *Transport
	sched *chanproto.Scheduler
	done  chan struct{}
	buf   []byte
	// streams being served: a writer with one has nothing to gather.
	streams atomic.Int32

	// idle closes the connection once it has held no channel for
	// Config.IdleConnectionTimeout (nil: never); channels counts them.
	idle     *time.Timer
	idleMu   sync.Mutex
	channels int
}

// channelOpened and channelClosed count the connection's channels: the
// idle timer runs only while there is none.
func (w *connWriter) channelOpened() {
	w.idleMu.Lock()
	defer w.idleMu.Unlock()
	w.channels++
	if w.channels == 1 && w.idle != nil {
		w.idle.Stop()
	}
}

func (w *connWriter) channelClosed() {
	w.idleMu.Lock()
	defer w.idleMu.Unlock()
	w.channels--
	if w.channels == 0 && w.idle != nil {
		w.idle.Reset(w.t.cfg.IdleConnectionTimeout)
	}
}

func (w *connWriter) loop() {
	for {
		select {
		case <-w.sched.Wake():
		case <-w.done:
			return
		}
		if w.streams.Load() > 1 {
			w.t.gather()
		}
		for w.sched.Serve(1<<20, w.emit) {
		}
	}
}

// emit writes one frame of stream o.Owner.
func (w *connWriter) emit(o *chanproto.Outbound, m wire.Message, payload exchange.Buffer, st chanproto.Status) int {
	s := o.Owner.(*serverStream)
	priority := st.Buffer && o.Urgent()
	if priority {
		s.setUrgent(true)
	}
	w.buf = wire.AppendFrame(w.buf[:0], m, w.t.opts)
	n := len(w.buf) + payload.Len()
	if n <= smallFrame {
		w.buf = append(w.buf, payload.Bytes()...)
		payload.Release()
		err := s.str.TryWriteAll(w.buf)
		if err == nil {
			if st.Done {
				s.finishSend()
			}
			return n
		}
		if !errors.Is(err, quic.ErrWouldBlock) {
			s.stop()
			return n
		}
		payload = exchange.Buffer{}
	}
	// Large or blocked: written on the side, in order, while the stream
	// is held.
	frame := append([]byte(nil), w.buf...)
	w.sched.Hold(o)
	if !w.t.goTracked(func() {
		defer w.sched.Resume(o, false)
		s.writeBlocking(frame, payload, st.Done, !priority)
	}) {
		payload.Release()
		w.sched.Resume(o, false)
	}
	return n
}

// serverStream serves one input channel: the producer side of one
// stream. Its goroutine reads the consumer's messages; the connection's
// writer sends the channel's frames.
type serverStream struct {
	t    *Transport
	w    *connWriter
	str  *quic.Stream
	peer string
	log  zerolog.Logger
	out  *chanproto.Outbound

	finalSent atomic.Bool // the last ErrorResponse and FIN are out
	urgent    bool        // writer only
	// handshook frees the stream's handshake slot (serveConn), once:
	// when the request was read or refused, or serve ended.
	handshook func()
}

func newServerStream(t *Transport, w *connWriter, str *quic.Stream, peer string, log zerolog.Logger) *serverStream {
	return &serverStream{
		t: t, w: w, str: str, peer: peer,
		log: log.With().Int64("stream", int64(str.StreamID())).Logger(),
	}
}

// serverAccepts: the messages a consumer may send on a stream (all but
// a producer's).
func serverAccepts(id wire.MsgID) bool { return !clientAccepts(id) }

func (s *serverStream) serve() {
	if s.handshook != nil {
		defer s.handshook() // if the handshake did not get that far
	}
	opts := s.t.opts
	fr := newFrameReader(s.str, opts)
	hello := wire.NewHello(opts)
	if _, err := s.str.Write(wire.AppendFrame(nil, &hello, opts)); err != nil {
		s.abort(StreamCodeCancelled)
		return
	}
	_ = s.str.SetReadDeadline(time.Now().Add(s.t.cfg.HandshakeTimeout))
	req, peerMax, err := s.readRequest(fr)
	if s.handshook != nil {
		s.handshook()
	}
	if err != nil {
		s.refuse(err)
		return
	}
	_ = s.str.SetReadDeadline(time.Time{})
	s.out = chanproto.NewOutbound(wire.ID{}, req.PartitionID, s.peer, opts, peerMax, s.w.sched.Ready)
	s.out.Owner = s
	err = s.out.Open(s.t.node.Provider(), exchange.ViewRequest{
		Partition:     exchange.PartitionID(req.PartitionID),
		Subpartition:  int(req.Subpartition),
		Receiver:      exchange.NewChannelID(),
		InitialCredit: int(req.Credit),
		Peer:          s.peer,
	})
	if err != nil {
		s.log.Debug().Err(err).Msg("partition request refused")
		s.sendFinal(chanproto.Refusal(wire.ID{}, err), StreamCodeRefused)
		return
	}
	s.w.streams.Add(1)
	defer s.w.streams.Add(-1)
	s.w.channelOpened()
	defer s.w.channelClosed()
	s.controlLoop(fr)
}

// readRequest reads the consumer's Hello and PartitionRequest.
func (s *serverStream) readRequest(fr *frameReader) (wire.PartitionRequest, int, error) {
	m, err := fr.next(serverAccepts)
	if err != nil {
		return wire.PartitionRequest{}, 0, err
	}
	peerMax, err := chanproto.PeerHello(m, s.t.opts.MaxFrameSize)
	if err != nil {
		return wire.PartitionRequest{}, 0, err
	}
	if m, err = fr.next(serverAccepts); err != nil {
		return wire.PartitionRequest{}, 0, err
	}
	pr, ok := m.(*wire.PartitionRequest)
	if !ok {
		return wire.PartitionRequest{}, 0, fmt.Errorf("%w: %s after Hello, want PartitionRequest", wire.ErrUnknownMessage, m.ID())
	}
	return *pr, peerMax, nil
}

// refuse ends a stream whose opening failed: bad input gets an
// ErrorResponse first.
func (s *serverStream) refuse(err error) {
	code := chanproto.ErrorCode(err)
	switch {
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

// sendFinal writes a last ErrorResponse before the channel has an
// outbound, closes the send side (FIN, so the message is delivered
// reliably, which a RESET_STREAM would not guarantee) and stops reading
// with code.
func (s *serverStream) sendFinal(m *wire.ErrorResponse, code quic.StreamErrorCode) {
	s.str.CancelRead(code)
	_ = s.str.SetWriteDeadline(time.Now().Add(s.t.cfg.HandshakeTimeout))
	s.writeBlocking(wire.AppendFrame(nil, m, s.t.opts), exchange.Buffer{}, true, false)
}

// controlLoop handles the consumer's messages until the stream ends.
func (s *serverStream) controlLoop(fr *frameReader) {
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
		switch m.(type) {
		case *wire.CancelPartitionRequest, *wire.CloseRequest:
			s.stop()
			return
		}
		handled, verr := s.out.Apply(m)
		if !handled {
			verr = fmt.Errorf("%w: %s after the partition request", wire.ErrUnknownMessage, m.ID())
		}
		if verr != nil {
			s.protocolFailure(verr)
			return
		}
	}
}

// protocolFailure fails only this stream: the view is released, the
// writer sends an ErrorResponse naming the peer and closes, and reading
// stops with StreamCodeProtocol.
func (s *serverStream) protocolFailure(err error) {
	s.log.Warn().Err(&exchange.ProtocolError{Peer: s.peer, Err: err}).Msg("bad input on a channel stream; only this stream is closed")
	s.str.CancelRead(StreamCodeProtocol)
	// A peer that does not read must not hold a writer forever.
	_ = s.str.SetWriteDeadline(time.Now().Add(s.t.cfg.HandshakeTimeout))
	s.out.Fail(err)
}

// stop ends the stream after a cancel or connection loss.
func (s *serverStream) stop() {
	s.out.Release()
	if !s.finalSent.Load() {
		s.str.CancelWrite(StreamCodeCancelled)
	}
	s.str.CancelRead(StreamCodeCancelled)
}

func (s *serverStream) abort(code quic.StreamErrorCode) {
	s.str.CancelRead(code)
	s.str.CancelWrite(code)
}

// finishSend closes the send side after the channel's last frame (an
// ErrorResponse) with a FIN.
func (s *serverStream) finishSend() {
	s.finalSent.Store(true)
	s.str.CancelRead(StreamCodeCancelled)
	_ = s.str.Close()
}

// writeBlocking writes a frame and its payload (released afterwards),
// waiting for QUIC flow control; last closes the send side after it.
// With calm, a raised urgency drops back once the write had to wait for
// the stream's earlier bytes, the priority event among them, to be packed
// (quic-go returns from a Write longer than its packet buffer only then).
func (s *serverStream) writeBlocking(frame []byte, payload exchange.Buffer, last, calm bool) {
	_, err := s.str.Write(frame)
	if err == nil && payload.Len() > 0 {
		_, err = s.str.Write(payload.Bytes())
	}
	if err == nil && calm && payload.Len() > packetBufferSize {
		s.setUrgent(false)
	}
	payload.Release()
	switch {
	case err != nil && last:
		s.str.CancelWrite(StreamCodeProtocol)
	case err != nil:
		s.stop()
	case last:
		s.finishSend()
	}
}

// setUrgent raises the stream's urgency for a priority event, so that
// quic-go packs it before the bulk data of other streams, or drops it
// back.
func (s *serverStream) setUrgent(urgent bool) {
	if urgent == s.urgent {
		return
	}
	s.urgent = urgent
	if urgent {
		s.str.SetPriority(priorityUrgency, true)
	} else {
		s.str.SetPriority(defaultUrgency, true)
	}
}
