package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Gateway is a client of one remote endpoint (Flink's RpcGateway): the
// peer's address, the endpoint's id, the gateway type the handshake
// checked, and the fencing token its calls carry. It is cheap, immutable
// and safe for concurrent use; calls share the service's one connection
// to the peer, which is dialed again if it was lost. Typed gateways embed
// it and wrap Call:
//
//	type JobMasterGateway struct{ *rpc.Gateway }
//
//	func (g JobMasterGateway) Heartbeat(ctx context.Context, h Heartbeat) (Ack, error) {
//		return rpc.Call[Heartbeat, Ack](ctx, g.Gateway, "heartbeat", h)
//	}
type Gateway struct {
	svc         *Service
	addr, host  string
	endpoint    string
	gatewayType string
	token       FencingToken
}

// Connect connects to the endpoint endpointID at addr (host:port) and
// performs the remote handshake: the protocol versions must match and the
// endpoint must serve gatewayType; otherwise the error is a
// *HandshakeError naming both sides. An unknown endpoint is
// ErrEndpointNotFound. ctx bounds the dial and the handshake.
func (s *Service) Connect(ctx context.Context, addr, endpointID, gatewayType string) (*Gateway, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &ConfigError{"addr", addr, "must be host:port"}
	}
	g := &Gateway{svc: s, addr: addr, host: host, endpoint: endpointID, gatewayType: gatewayType}
	ctx, cancel := s.withCallTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	req := &message{version: s.version, kind: kindHandshake, endpoint: endpointID, method: gatewayType}
	if dl, ok := ctx.Deadline(); ok {
		req.timeout = time.Until(dl)
	}
	if _, err := g.roundTrip(ctx, req); err != nil {
		return nil, err
	}
	return g, nil
}

// Address returns the peer's address (host:port).
func (g *Gateway) Address() string { return g.addr }

// Hostname returns the peer's host.
func (g *Gateway) Hostname() string { return g.host }

// Endpoint returns the remote endpoint's id.
func (g *Gateway) Endpoint() string { return g.endpoint }

// Type returns the gateway type the handshake checked.
func (g *Gateway) Type() string { return g.gatewayType }

// WithFencingToken returns a copy of g whose calls carry token (Flink's
// FencedRpcGateway).
func (g *Gateway) WithFencingToken(token FencingToken) *Gateway {
	c := *g
	c.token = token
	return &c
}

// FencingToken returns the token g's calls carry.
func (g *Gateway) FencingToken() FencingToken { return g.token }

func (s *Service) withCallTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Call calls method on g's endpoint with req and returns its response.
// It runs on the endpoint's main goroutine. A ctx without a deadline gets
// Config.CallTimeout. Errors are typed: *TimeoutError, *EndpointError
// (not found, not started, unknown method, mailbox full), *FencedError,
// *ConnectionLostError, *RemoteError (the handler's error message),
// *MessageError (bad or too large).
func Call[Req, Resp any](ctx context.Context, g *Gateway, method string, req Req) (Resp, error) {
	var resp Resp
	payload, err := json.Marshal(req)
	if err != nil {
		return resp, &MessageError{Peer: "local", Detail: fmt.Sprintf("encoding the request of %s: %v", method, err), Err: ErrBadMessage}
	}
	ctx, cancel := g.svc.withCallTimeout(ctx, g.svc.cfg.CallTimeout)
	defer cancel()
	m := &message{version: g.svc.version, kind: kindCall, endpoint: g.endpoint, method: method, token: g.token, payload: payload}
	if dl, ok := ctx.Deadline(); ok {
		m.timeout = time.Until(dl)
	}
	if n := m.encodedSize(); n > g.svc.cfg.MaxMessageSize {
		return resp, &MessageError{Peer: "local", Detail: fmt.Sprintf("request of %s.%s is %d bytes, the maximum is %d", g.endpoint, method, n, g.svc.cfg.MaxMessageSize), Err: ErrTooLarge}
	}
	r, err := g.roundTrip(ctx, m)
	if err != nil {
		return resp, err
	}
	if err := json.Unmarshal(r.payload, &resp); err != nil {
		return resp, &MessageError{Peer: g.addr, Detail: fmt.Sprintf("response of %s.%s does not decode: %v", g.endpoint, method, err), Err: ErrBadMessage}
	}
	return resp, nil
}

// roundTrip sends m and turns transport failures and error responses into
// typed errors.
func (g *Gateway) roundTrip(ctx context.Context, m *message) (*message, error) {
	r, err := g.svc.roundTrip(ctx, g.addr, m)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) || errors.Is(err, context.DeadlineExceeded) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				name := m.method
				if m.kind == kindHandshake {
					name = "handshake"
				}
				return nil, &TimeoutError{Peer: g.addr, Endpoint: g.endpoint, Method: name, Timeout: m.timeout}
			}
			return nil, fmt.Errorf("rpc: call %s.%s at %s: %w", g.endpoint, m.method, g.addr, ctx.Err())
		}
		return nil, err
	}
	if err := g.svc.responseError(g.addr, m, r); err != nil {
		return nil, err
	}
	return r, nil
}
