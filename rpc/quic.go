package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// QUICConfig returns the quic-go configuration of the control plane for
// the accepting (server) or dialing side: the service's timeouts, and at
// most MaxInFlight concurrent streams (calls) per connection.
func (s *Service) QUICConfig(server bool) *quic.Config {
	qc := &quic.Config{
		HandshakeIdleTimeout:  s.cfg.HandshakeTimeout,
		MaxIdleTimeout:        s.cfg.IdleTimeout,
		KeepAlivePeriod:       s.cfg.KeepAlivePeriod,
		MaxIncomingStreams:    int64(s.cfg.MaxInFlight),
		MaxIncomingUniStreams: -1,
	}
	if !server {
		qc.MaxIncomingStreams = -1 // only the dialing side opens streams
	}
	return qc
}

// ServerTLSConfig returns the TLS configuration the service accepts with:
// TLS 1.3, ALPN, the client's certificate required and verified by pin
// or CA. A node that shares its QUIC socket with the data plane adds ALPN
// to its listener and hands those connections to ServeQUICConn.
func (s *Service) ServerTLSConfig() *tls.Config { return s.tls.serverTLS() }

// ClientTLSConfig returns the TLS configuration the service dials host
// with (for a Config.DialQUIC that dials from a shared socket).
func (s *Service) ClientTLSConfig(host string) *tls.Config { return s.tls.clientTLS(host) }

func (s *Service) listenQUIC() error {
	lp := s.cfg.ListenPacket
	if lp == nil {
		lp = net.ListenPacket
	}
	if s.cfg.DialQUIC != nil && s.cfg.NoListen {
		return nil // fully fed from outside
	}
	pc, err := lp("udp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("rpc: listening on udp %s: %w", s.cfg.ListenAddr, err)
	}
	s.udp = pc
	s.quicTr = &quic.Transport{Conn: pc}
	if s.cfg.NoListen {
		return nil
	}
	ln, err := s.quicTr.Listen(s.tls.serverTLS(), s.QUICConfig(true))
	if err != nil {
		s.quicTr.Close()
		pc.Close()
		return fmt.Errorf("rpc: quic listen on %s: %w", s.cfg.ListenAddr, err)
	}
	s.quicLn, s.addr = ln, pc.LocalAddr().String()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept(s.serveCtx)
			if err != nil {
				return
			}
			if err := s.ServeQUICConn(c); err != nil {
				s.log.Warn().Err(err).Str("peer", c.RemoteAddr().String()).Msg("rpc: refused connection")
			}
		}
	}()
	return nil
}

// quicCloser closes a QUIC connection for Close.
type quicCloser struct{ c *quic.Conn }

func (q quicCloser) Close() error { return q.c.CloseWithError(0, "rpc service closed") }

// ServeQUICConn serves an accepted QUIC connection that negotiated ALPN
// (its TLS handshake is done): one stream per call, answered until the
// connection closes. It returns at once; the service owns c. A node that
// shares its UDP socket with the data plane feeds it the connections its
// listener accepted for ALPN.
func (s *Service) ServeQUICConn(c *quic.Conn) error {
	if p := c.ConnectionState().TLS.NegotiatedProtocol; p != ALPN {
		c.CloseWithError(1, "wrong ALPN")
		return fmt.Errorf("%w (got %q)", errBadALPN, p)
	}
	qc := quicCloser{c}
	if err := s.track(qc); err != nil {
		c.CloseWithError(2, "refused")
		return err
	}
	if !s.goTracked(func() {
		defer s.untrack(qc)
		s.serveQUIC(c)
	}) {
		s.untrack(qc)
		qc.Close()
		return ErrClosed
	}
	return nil
}

func (s *Service) serveQUIC(c *quic.Conn) {
	peer := c.RemoteAddr().String()
	ctx, cancel := context.WithCancel(s.serveCtx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.CloseWithError(0, "rpc service closed") })
	defer stop()
	// Connections fed from outside may allow more streams than
	// MaxInFlight: bound the handlers here too.
	slots := make(chan struct{}, s.cfg.MaxInFlight)
	var calls sync.WaitGroup
	defer func() {
		cancel() // ends the handlers' contexts before waiting for them
		calls.Wait()
	}()
	for {
		select {
		case slots <- struct{}{}:
		case <-c.Context().Done():
			return
		}
		str, err := c.AcceptStream(ctx)
		if err != nil {
			<-slots
			s.log.Debug().Err(err).Str("peer", peer).Msg("rpc: quic connection ended")
			return
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			defer func() { <-slots }()
			s.serveStream(ctx, str)
		}()
	}
}

// serveStream answers the one call of a stream.
func (s *Service) serveStream(ctx context.Context, str *quic.Stream) {
	defer str.Close()
	stop := context.AfterFunc(ctx, func() { str.CancelRead(0); str.CancelWrite(0) })
	defer stop()
	_ = str.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	req := new(message)
	var buf []byte
	err := readFrame(str, &buf, s.cfg.MaxMessageSize, req)
	str.CancelRead(0) // one frame per stream: nothing more is read
	var resp *message
	var fe *frameError
	switch {
	case errors.As(err, &fe):
		resp = s.response(req, fe.code, fe.detail)
		resp.callID = fe.callID
	case err != nil:
		str.CancelWrite(0)
		return
	default:
		if resp = s.serve(ctx, req); resp == nil {
			str.CancelWrite(0)
			return
		}
	}
	_ = str.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
	if _, err := str.Write(appendFrame(nil, resp)); err != nil {
		str.CancelWrite(0)
	}
}

// quicClient opens one stream per call on one connection.
type quicClient struct {
	s    *Service
	peer string
	c    *quic.Conn
	// ended is set when a call saw the connection itself end: quic-go
	// fails the streams of a closed connection before it cancels the
	// connection's context, so done() alone would hand the dead
	// connection to the next call.
	ended atomic.Bool
}

func (s *Service) dialQUIC(ctx context.Context, addr string) (clientConn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var c *quic.Conn
	if s.cfg.DialQUIC != nil {
		c, err = s.cfg.DialQUIC(ctx, addr, s.tls.clientTLS(host), s.QUICConfig(false))
	} else {
		var ua *net.UDPAddr
		if ua, err = net.ResolveUDPAddr("udp", addr); err != nil {
			return nil, err
		}
		c, err = s.quicTr.Dial(ctx, ua, s.tls.clientTLS(host), s.QUICConfig(false))
	}
	if err != nil {
		return nil, err
	}
	return &quicClient{s: s, peer: addr, c: c}, nil
}

func (q *quicClient) done() <-chan struct{} { return q.c.Context().Done() }

func (q *quicClient) usable() bool { return !q.ended.Load() }

func (q *quicClient) close(cause error) { q.c.CloseWithError(0, cause.Error()) }

func (q *quicClient) lost(err error) error {
	if cause := context.Cause(q.c.Context()); cause != nil {
		err = cause
	}
	var appErr *quic.ApplicationError
	var idle *quic.IdleTimeoutError
	var transportErr *quic.TransportError
	if errors.As(err, &appErr) || errors.As(err, &idle) || errors.As(err, &transportErr) {
		q.ended.Store(true) // a connection-level error: the next call dials
	}
	return &ConnectionLostError{Peer: q.peer, Cause: err}
}

func (q *quicClient) roundTrip(ctx context.Context, req *message) (*message, error) {
	str, err := q.c.OpenStreamSync(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, q.lost(err)
	}
	stop := context.AfterFunc(ctx, func() { str.CancelRead(0); str.CancelWrite(0) })
	defer stop()
	m := *req
	m.callID = 1 // one call per stream
	if _, err := str.Write(appendFrame(nil, &m)); err != nil {
		return nil, q.fail(ctx, str, err)
	}
	str.Close() // FIN: the request is complete
	resp := new(message)
	var buf []byte
	err = readFrame(str, &buf, q.s.cfg.MaxMessageSize, resp)
	var fe *frameError
	switch {
	case errors.As(err, &fe):
		str.CancelRead(0)
		return &message{kind: kindResponse, code: fe.code, callID: fe.callID, detail: fe.detail}, nil
	case err != nil:
		return nil, q.fail(ctx, str, err)
	}
	str.CancelRead(0) // the response is complete; the FIN needs no wait
	if resp.kind != kindResponse {
		return &message{kind: kindResponse, code: codeBadMessage, detail: fmt.Sprintf("the server sent a message of kind %d instead of a response", resp.kind)}, nil
	}
	return resp, nil
}

func (q *quicClient) fail(ctx context.Context, str *quic.Stream, err error) error {
	str.CancelRead(0)
	str.CancelWrite(0)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return q.lost(err)
}
