package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

func (s *Service) listenTCP() error {
	if s.cfg.NoListen {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("rpc: listening on tcp %s: %w", s.cfg.ListenAddr, err)
	}
	s.tcpLn, s.addr = ln, ln.Addr().String()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.log.Warn().Err(err).Msg("rpc: tcp accept")
				}
				return
			}
			if err := s.ServeTCPConn(c); err != nil {
				s.log.Warn().Err(err).Str("peer", c.RemoteAddr().String()).Msg("rpc: refused connection")
			}
		}
	}()
	return nil
}

// ServeTCPConn serves an accepted TCP connection: the service performs
// the TLS server handshake (mutual, ALPN) and answers calls on it until
// it closes. It returns at once; the service owns c (and closes it when
// refusing it).
func (s *Service) ServeTCPConn(c net.Conn) error {
	if err := s.track(c); err != nil {
		c.Close()
		return err
	}
	if !s.goTracked(func() {
		defer s.untrack(c)
		defer c.Close()
		s.serveTCP(c)
	}) {
		s.untrack(c)
		c.Close()
		return ErrClosed
	}
	return nil
}

func (s *Service) setKeepAlive(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: s.cfg.KeepAlivePeriod, Interval: s.cfg.KeepAlivePeriod, Count: max(1, int(s.cfg.IdleTimeout/s.cfg.KeepAlivePeriod))})
	}
}

func (s *Service) serveTCP(raw net.Conn) {
	peer := raw.RemoteAddr().String()
	s.setKeepAlive(raw)
	tc := tls.Server(raw, s.tls.serverTLS())
	hctx, cancel := context.WithTimeout(s.serveCtx, s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		s.log.Warn().Err(err).Str("peer", peer).Msg("rpc: tls handshake")
		return
	}
	ctx, cancelConn := context.WithCancel(s.serveCtx)
	defer cancelConn()
	stop := context.AfterFunc(ctx, func() { tc.Close() })
	defer stop()

	var calls sync.WaitGroup
	defer func() {
		cancelConn() // ends the handlers' contexts before waiting for them
		calls.Wait()
	}()
	fw := &frameWriter{conn: tc, timeout: s.cfg.IdleTimeout}
	write := func(m *message) {
		if fw.write(m) != nil {
			cancelConn() // a peer that does not read loses its connection
		}
	}
	slots := make(chan struct{}, s.cfg.MaxInFlight)
	for {
		// Back pressure: a connection with MaxInFlight calls running is
		// not read until one ends.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		req := new(message)
		var buf []byte // the handler's request aliases it: one per frame
		err := readFrame(tc, &buf, s.cfg.MaxMessageSize, req)
		var fe *frameError
		switch {
		case errors.As(err, &fe):
			// The stream is still in sync: refuse this call only.
			s.log.Debug().Str("peer", peer).Str("error", fe.detail).Msg("rpc: bad request")
			if fe.hasHeader {
				write(s.response(req, fe.code, fe.detail))
			}
			<-slots
			continue
		case err != nil:
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Debug().Err(err).Str("peer", peer).Msg("rpc: connection ended")
			}
			return
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			defer func() { <-slots }()
			if resp := s.serve(ctx, req); resp != nil {
				write(resp)
			}
		}()
	}
}

// tcpClient multiplexes calls over one TLS connection by call id.
type tcpClient struct {
	s     *Service
	peer  string
	c     net.Conn
	slots chan struct{}
	fw    *frameWriter

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *message
	err     error // why the connection ended
	ended   chan struct{}
}

func (s *Service) dialTCP(ctx context.Context, addr string) (clientConn, error) {
	dial := s.cfg.DialTCP
	if dial == nil {
		d := &net.Dialer{}
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s.setKeepAlive(raw)
	host, _, _ := net.SplitHostPort(addr)
	tc := tls.Client(raw, s.tls.clientTLS(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	cc := &tcpClient{s: s, peer: addr, c: tc, slots: make(chan struct{}, s.cfg.MaxInFlight),
		fw:      &frameWriter{conn: tc, timeout: s.cfg.IdleTimeout},
		pending: map[uint64]chan *message{}, ended: make(chan struct{})}
	if !s.goTracked(cc.readLoop) {
		tc.Close()
		return nil, ErrClosed
	}
	return cc, nil
}

func (c *tcpClient) done() <-chan struct{} { return c.ended }

// usable is false once the read loop has failed: it records the error
// before it wakes the pending calls, and closes ended only after.
func (c *tcpClient) usable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

func (c *tcpClient) close(cause error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = cause
	}
	c.mu.Unlock()
	c.c.Close()
}

func (c *tcpClient) readLoop() {
	var buf []byte
	var err error
	for {
		m := new(message)
		err = readFrame(c.c, &buf, c.s.cfg.MaxMessageSize, m)
		var fe *frameError
		if errors.As(err, &fe) {
			if !fe.hasHeader {
				err = fmt.Errorf("undecodable response: %s", fe.detail)
				break
			}
			// Deliver the failure to its call only.
			m = &message{kind: kindResponse, code: fe.code, callID: fe.callID, detail: fe.detail}
		} else if err != nil {
			break
		} else if m.kind != kindResponse {
			m = &message{kind: kindResponse, code: codeBadMessage, callID: m.callID, detail: fmt.Sprintf("the server sent a message of kind %d instead of a response", m.kind)}
		} else {
			m.payload = append([]byte(nil), m.payload...) // buf is reused
		}
		c.mu.Lock()
		ch := c.pending[m.callID]
		delete(c.pending, m.callID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m // buffered
		}
	}
	c.c.Close()
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	for id, ch := range c.pending {
		delete(c.pending, id)
		close(ch)
	}
	c.mu.Unlock()
	close(c.ended)
}

func (c *tcpClient) lost() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return &ConnectionLostError{Peer: c.peer, Cause: c.err}
}

func (c *tcpClient) roundTrip(ctx context.Context, req *message) (*message, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ended:
		return nil, c.lost()
	}
	defer func() { <-c.slots }()
	ch := make(chan *message, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.lost()
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	m := *req
	m.callID = id

	if err := c.fw.write(&m); err != nil {
		forget()
		c.close(err)
		return nil, c.lost()
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, c.lost()
		}
		return r, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}
