// Package rpc is the control plane of qexchange, after Apache Flink's RPC
// (RpcService, RpcEndpoint, RpcGateway, AkkaRpcActor): the channel over
// which a coordinator (JobMaster) deploys and supervises tasks on workers
// (TaskExecutors), beside the data plane of package exchange.
//
// # Model
//
// A Service is one per node. It hosts endpoints, accepts connections for
// them, and dials peers for gateways, keeping one connection per peer
// address that every call shares (dialed again after it is lost).
//
// An Endpoint has an id and a lifecycle, that of Flink's AkkaRpcActor:
// stopped, started, terminating, terminated, driven by the control
// messages START (Start; runs OnStart), STOP (Stop) and TERMINATE
// (Terminate; runs OnStop). A call to an endpoint that is not started
// fails at once with ErrNotStarted; it never waits.
//
// Every call, RunAsync, CallAsync and ScheduleRunAsync of one endpoint
// runs on the endpoint's main goroutine, fed by a bounded mailbox, so
// endpoint state needs no locks (ValidateRunsInMainThread checks it). A
// full mailbox rejects with ErrMailboxFull rather than growing.
//
// Methods are registered with typed requests and responses, and called
// through a Gateway, the typed client of one remote endpoint:
//
//	rpc.Register(ep, "heartbeat", func(ctx context.Context, h Heartbeat) (Ack, error) {...})
//	g, err := svc.Connect(ctx, "10.0.0.1:7100", "jobmaster", "JobMasterGateway")
//	ack, err := rpc.Call[Heartbeat, Ack](ctx, g, "heartbeat", h)
//
// Typed gateways embed *Gateway and wrap Call, with no code generation.
// Connect performs the remote handshake: protocol version, and the
// gateway type the client expects against the one the endpoint serves;
// a mismatch is a *HandshakeError naming both.
//
// A fenced endpoint (EndpointConfig.Fenced) accepts calls only with its
// current FencingToken (Gateway.WithFencingToken); stale tokens get a
// *FencedError. CallAsyncWithoutFencing runs local work regardless, as in
// Flink, e.g. to set the first token.
//
// # Errors
//
// Every error wraps a sentinel for errors.Is (ErrTimeout,
// ErrEndpointNotFound, ErrNotStarted, ErrFenced, ErrConnectionLost,
// ErrRemote, ErrUnknownMethod, ErrBadMessage, ErrTooLarge,
// ErrMailboxFull, ErrHandshake) and has a typed form for errors.As that
// names the peer, the endpoint and the method. A handler's error reaches
// the caller as a *RemoteError with its message kept; a handler's panic
// fails its call only.
//
// # Transports
//
// Both transports use mutual TLS 1.3 with ALPN "qexchange-rpc/1", with
// the material of Config.TLS, as the data plane's transports take it
// (tlsconf.Options: Certificate or CertFile/KeyFile; PinnedSHA256 or
// RootCAs/CAFile): verification is never skipped.
//
//   - QUIC: one stream per call, so a slow or lost call blocks no other.
//     MaxInFlight is the peer's stream limit. A node whose data plane runs
//     on QUIC can share its UDP socket: its listener accepts ALPN
//     "qexchange-rpc/1" too and hands those connections to
//     Service.ServeQUICConn, and Config.DialQUIC dials from that socket.
//   - TCP: one TLS connection per peer, calls multiplexed by call id,
//     responses in any order. The service has its own listener rather
//     than sharing the exchange's port: the exchange's TCP transport has
//     no TLS and a fixed frame format, and a second port keeps both
//     protocols and their failure modes apart. ServeTCPConn accepts
//     connections from a listener of the caller's.
//
// # Encoding
//
// A message is a frame: a 4-byte length, a fixed 16-byte header
// (protocol version, kind, response code, endpoint state, call id,
// remaining timeout), four length-prefixed strings (endpoint, method,
// fencing token, error detail) and the payload. The header layout is
// frozen, so a peer of another version is still answered with a clear
// version error. Payloads are encoding/json: in the standard library (no
// dependency), safe on hostile input (bounded by the frame size, no
// type-driven allocation as in encoding/gob), and tolerant of evolving
// message types (unknown fields are ignored, missing ones are zero), which
// matters for a control plane whose nodes are upgraded one at a time.
// Control messages are small and rare, so JSON's cost does not matter;
// the round-trip benchmark shows it.
//
// Messages are bounded by Config.MaxMessageSize. Garbage, oversized
// messages (skipped without being buffered), unknown methods and payloads
// that do not decode get typed errors; the connection and the other
// calls on it go on.
//
// # Bounds
//
// Accepted connections (MaxConnections), calls in flight per connection
// (MaxInFlight; a full TCP connection is not read, which pushes back),
// message size, mailbox size. Every call has a deadline (its context's,
// or CallTimeout), which travels to the server and bounds the handler's
// context. A caller whose context is cancelled returns at once; the
// handler, which cannot be told, still ends at the deadline. Close waits
// for every goroutine of the service; handlers must honour their context.
package rpc
