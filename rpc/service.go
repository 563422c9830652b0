package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"
)

// Service is a node's RPC service (Flink's RpcService): it hosts
// endpoints, accepts connections for them, and dials peers for gateways,
// keeping one connection per peer address and reusing it for every call.
type Service struct {
	cfg     Config
	log     zerolog.Logger
	tls     *peerTLS
	version uint8 // ProtocolVersion; tests change it

	ctx    context.Context // ends at Close: dialing, client connections
	cancel context.CancelFunc
	// serveCtx ends first in Close: accepted connections and the calls
	// they run.
	serveCtx    context.Context
	serveCancel context.CancelFunc
	wg          sync.WaitGroup

	mu        sync.Mutex
	closed    bool
	endpoints map[string]*Endpoint
	peers     map[string]*peerEntry
	accepted  map[io.Closer]struct{}

	addr   string
	tcpLn  net.Listener
	udp    net.PacketConn
	quicTr *quic.Transport
	quicLn *quic.Listener
}

// peerEntry is the one connection to a peer address, being dialed while
// ready is open.
type peerEntry struct {
	ready chan struct{}
	conn  clientConn
	err   error
}

// clientConn is the calling side of a connection.
type clientConn interface {
	roundTrip(ctx context.Context, req *message) (*message, error)
	close(cause error)
	done() <-chan struct{}
	// usable is false once a call saw the connection end, possibly
	// before done() is closed.
	usable() bool
}

// NewService validates cfg and starts a service: on TCP it listens on
// ListenAddr; on QUIC it binds a UDP socket there, accepts on it and dials
// from it. With NoListen it accepts nothing (but can still be fed
// connections with ServeTCPConn / ServeQUICConn).
func NewService(cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	v, err := newPeerTLS(cfg)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, tls: v, version: ProtocolVersion,
		endpoints: map[string]*Endpoint{},
		peers:     map[string]*peerEntry{},
		accepted:  map[io.Closer]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.serveCtx, s.serveCancel = context.WithCancel(s.ctx)
	switch cfg.Transport {
	case TCP:
		err = s.listenTCP()
	case QUIC:
		err = s.listenQUIC()
	}
	if err != nil {
		s.cancel()
		return nil, err
	}
	return s, nil
}

// Addr returns the address the service accepts on ("" with NoListen on
// TCP).
func (s *Service) Addr() string { return s.addr }

// Transport returns TCP or QUIC.
func (s *Service) Transport() string { return s.cfg.Transport }

// NewEndpoint creates a stopped endpoint and registers it under its id.
// Register its methods, then Start it.
func (s *Service) NewEndpoint(cfg EndpointConfig) (*Endpoint, error) {
	if cfg.ID == "" {
		return nil, &ConfigError{"EndpointConfig.ID", cfg.ID, "must not be empty"}
	}
	if cfg.MailboxSize < 0 {
		return nil, &ConfigError{"EndpointConfig.MailboxSize", cfg.MailboxSize, "must be >= 0"}
	}
	e := newEndpoint(s, cfg, s.cfg.MailboxSize)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if _, dup := s.endpoints[cfg.ID]; dup {
		return nil, &ConfigError{"EndpointConfig.ID", cfg.ID, "already in use on this service"}
	}
	s.endpoints[cfg.ID] = e
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		e.run()
	}()
	return e, nil
}

func (s *Service) removeEndpoint(e *Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.endpoints[e.id] == e {
		delete(s.endpoints, e.id)
	}
}

func (s *Service) endpoint(id string) *Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoints[id]
}

// Close stops accepting, closes the accepted connections (their callers
// see ErrConnectionLost and their handlers' contexts end), terminates
// every endpoint (running OnStop, bounded by ShutdownTimeout; OnStop may
// still call other services), then closes the connections this service
// dialed and waits for every goroutine of the service.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	eps := make([]*Endpoint, 0, len(s.endpoints))
	for _, e := range s.endpoints {
		eps = append(eps, e)
	}
	s.mu.Unlock()

	s.serveCancel()
	if s.tcpLn != nil {
		s.tcpLn.Close()
	}
	if s.quicLn != nil {
		s.quicLn.Close()
	}
	s.dropAccepted()

	// Endpoints terminate in parallel: each OnStop has ShutdownTimeout.
	errs := make([]error, len(eps))
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout+time.Second)
	var terminating sync.WaitGroup
	for i, e := range eps {
		terminating.Add(1)
		go func() {
			defer terminating.Done()
			errs[i] = e.Terminate(ctx)
		}()
	}
	terminating.Wait()
	cancel()
	s.cancel()
	s.mu.Lock()
	peers := s.peers
	s.peers = map[string]*peerEntry{}
	s.mu.Unlock()
	for _, p := range peers {
		<-p.ready
		if p.conn != nil {
			p.conn.close(ErrClosed)
		}
	}
	s.wg.Wait()
	if s.quicTr != nil {
		s.quicTr.Close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	return errors.Join(errs...)
}

// dropAccepted closes every accepted connection.
func (s *Service) dropAccepted() {
	s.mu.Lock()
	accepted := s.accepted
	s.accepted = map[io.Closer]struct{}{}
	s.mu.Unlock()
	for c := range accepted {
		c.Close()
	}
}

// track registers an accepted connection for Close, or refuses it when
// the service is closed or MaxConnections are open.
func (s *Service) track(c io.Closer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.accepted) >= s.cfg.MaxConnections {
		return fmt.Errorf("rpc: refusing connection: %d connections open (MaxConnections)", len(s.accepted))
	}
	s.accepted[c] = struct{}{}
	return nil
}

func (s *Service) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.accepted, c)
	s.mu.Unlock()
}

// goTracked runs fn as a goroutine Close waits for; false if closed.
func (s *Service) goTracked(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// conn returns the connection to addr, dialing it once for all callers.
func (s *Service) conn(ctx context.Context, addr string) (clientConn, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		p, ok := s.peers[addr]
		if !ok {
			if len(s.peers) >= s.cfg.MaxConnections {
				s.mu.Unlock()
				return nil, &ConnectionLostError{Peer: addr, Cause: fmt.Errorf("%d peer connections open (MaxConnections)", len(s.peers))}
			}
			p = &peerEntry{ready: make(chan struct{})}
			s.peers[addr] = p
			s.wg.Add(1)
			go s.dialPeer(addr, p)
		}
		s.mu.Unlock()
		select {
		case <-p.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if p.err != nil {
			return nil, p.err
		}
		select {
		case <-p.conn.done():
			s.forgetPeer(addr, p) // lost since: dial again
			continue
		default:
		}
		if !p.conn.usable() {
			// Seen ending by a call, not yet closed: dial again, and
			// close it here so that it is not left to linger.
			s.forgetPeer(addr, p)
			p.conn.close(ErrConnectionLost)
			continue
		}
		return p.conn, nil
	}
}

func (s *Service) dialPeer(addr string, p *peerEntry) {
	defer s.wg.Done()
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	var err error
	if s.cfg.Transport == TCP {
		p.conn, err = s.dialTCP(ctx, addr)
	} else {
		p.conn, err = s.dialQUIC(ctx, addr)
	}
	if err != nil {
		p.err = &ConnectionLostError{Peer: addr, Cause: fmt.Errorf("dialing: %w", err)}
		s.forgetPeer(addr, p)
	} else {
		s.log.Debug().Str("peer", addr).Str("transport", s.cfg.Transport).Msg("rpc: connected")
		// Forget the connection when it ends, so the next call dials.
		conn := p.conn
		if !s.goTracked(func() {
			select {
			case <-conn.done():
				s.forgetPeer(addr, p)
			case <-s.ctx.Done():
			}
		}) {
			conn.close(ErrClosed)
		}
	}
	close(p.ready)
}

func (s *Service) forgetPeer(addr string, p *peerEntry) {
	s.mu.Lock()
	if s.peers[addr] == p {
		delete(s.peers, addr)
	}
	s.mu.Unlock()
}

// roundTrip sends req to addr and waits for its response.
func (s *Service) roundTrip(ctx context.Context, addr string, req *message) (*message, error) {
	c, err := s.conn(ctx, addr)
	if err != nil {
		return nil, err
	}
	return c.roundTrip(ctx, req)
}

// response builds the response to req with code and detail.
func (s *Service) response(req *message, code uint8, detail string) *message {
	return &message{version: s.version, kind: kindResponse, code: code, callID: req.callID, detail: detail}
}

// serve answers one request: the handshake, or a call run on the
// endpoint's main goroutine. connCtx ends when the connection closes.
// Every problem becomes an error response; nil means the connection
// closed and there is no one to answer.
func (s *Service) serve(connCtx context.Context, req *message) *message {
	if req.version != s.version {
		return s.response(req, codeVersion, fmt.Sprintf("server speaks protocol version %d", s.version))
	}
	ep := s.endpoint(req.endpoint)
	if ep == nil {
		return s.response(req, codeEndpointNotFound, "")
	}
	switch req.kind {
	case kindHandshake:
		if req.method != ep.gateway {
			return s.response(req, codeGatewayMismatch, ep.gateway)
		}
		return s.response(req, codeOK, "")
	case kindCall:
	default:
		return s.response(req, codeBadMessage, fmt.Sprintf("a request of kind %d", req.kind))
	}
	m := ep.method(req.method)
	if m == nil {
		return s.response(req, codeUnknownMethod, "")
	}
	arg, err := m.decode(req.payload)
	if err != nil {
		return s.response(req, codeBadMessage, fmt.Sprintf("request of %s.%s does not decode: %v", ep.id, m.name, err))
	}
	timeout := req.timeout
	if timeout <= 0 {
		timeout = s.cfg.CallTimeout
	}
	ctx, cancel := context.WithTimeout(connCtx, timeout)
	defer cancel()
	type outcome struct {
		v   any
		err error
	}
	done := make(chan outcome, 1)
	if err := ep.enqueue(task{
		run: func() {
			if ctx.Err() != nil {
				done <- outcome{err: ctx.Err()}
				return
			}
			if err := ep.fencingCheck(m.name, req.token); err != nil {
				done <- outcome{err: err}
				return
			}
			v, err := invokeSafely(ctx, m, arg)
			done <- outcome{v, err}
		},
		reject: func(err error) { done <- outcome{err: err} },
	}, m.name, false); err != nil {
		return s.errorResponse(req, ep, err)
	}
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		o.err = ctx.Err()
	}
	if connCtx.Err() != nil {
		return nil
	}
	if o.err != nil {
		if ctx.Err() != nil && errors.Is(o.err, ctx.Err()) {
			return s.response(req, codeTimeout, fmt.Sprintf("no result within %v", timeout))
		}
		return s.errorResponse(req, ep, o.err)
	}
	b, err := m.encode(o.v)
	if err != nil {
		return s.response(req, codeRemote, fmt.Sprintf("encoding the response: %v", err))
	}
	resp := s.response(req, codeOK, "")
	resp.payload = b
	if n := resp.encodedSize(); n > s.cfg.MaxMessageSize {
		return s.response(req, codeTooLarge, fmt.Sprintf("response of %d bytes exceeds the server's maximum of %d", n, s.cfg.MaxMessageSize))
	}
	return resp
}

func (s *Service) errorResponse(req *message, ep *Endpoint, err error) *message {
	var fe *FencedError
	var ee *EndpointError
	switch {
	case errors.As(err, &fe):
		return s.response(req, codeFenced, string(fe.Expected))
	case errors.As(err, &ee) && ee.Err == ErrNotStarted:
		r := s.response(req, codeNotStarted, "")
		r.state = ee.State
		return r
	case errors.Is(err, ErrMailboxFull):
		return s.response(req, codeMailboxFull, "")
	}
	return s.response(req, codeRemote, err.Error())
}

// responseError turns an error response into the typed error.
func (s *Service) responseError(peer string, req, resp *message) error {
	ep, meth := req.endpoint, req.method
	switch resp.code {
	case codeOK:
		return nil
	case codeRemote:
		return &RemoteError{Peer: peer, Endpoint: ep, Method: meth, Message: resp.detail}
	case codeEndpointNotFound:
		return &EndpointError{Peer: peer, Endpoint: ep, Err: ErrEndpointNotFound}
	case codeNotStarted:
		return &EndpointError{Peer: peer, Endpoint: ep, Method: meth, State: resp.state, Err: ErrNotStarted}
	case codeUnknownMethod:
		return &EndpointError{Peer: peer, Endpoint: ep, Method: meth, Err: ErrUnknownMethod}
	case codeMailboxFull:
		return &EndpointError{Peer: peer, Endpoint: ep, Method: meth, Err: ErrMailboxFull}
	case codeFenced:
		return &FencedError{Endpoint: ep, Method: meth, Expected: FencingToken(resp.detail), Got: req.token}
	case codeBadMessage:
		return &MessageError{Peer: peer, Detail: resp.detail, Err: ErrBadMessage}
	case codeTooLarge:
		return &MessageError{Peer: peer, Detail: resp.detail, Err: ErrTooLarge}
	case codeTimeout:
		return &TimeoutError{Peer: peer, Endpoint: ep, Method: meth, Timeout: req.timeout, AtServer: true}
	case codeVersion:
		return &HandshakeError{Peer: peer, Endpoint: ep, ClientVersion: req.version, ServerVersion: resp.version}
	case codeGatewayMismatch:
		return &HandshakeError{Peer: peer, Endpoint: ep, ClientVersion: req.version, ServerVersion: resp.version, Expected: req.method, Served: resp.detail}
	case codeClosed:
		return &ConnectionLostError{Peer: peer, Cause: ErrClosed}
	}
	return &MessageError{Peer: peer, Detail: fmt.Sprintf("unknown response code %d", resp.code), Err: ErrBadMessage}
}
