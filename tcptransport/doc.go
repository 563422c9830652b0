// Package tcptransport is the TCP exchange.Transport: a Go rendering of
// Flink's Netty data plane (NettyServer, NettyClient,
// PartitionRequestClientFactory, PartitionRequestQueue and
// CreditBasedPartitionRequestClientHandler). The channel protocol (credit,
// the receive sequence, the control queue, the failure policy, the ready
// queue, reference-counted connections) is package chanproto's, shared
// with the other transports; this package keeps sockets, receiverId
// demultiplexing and writev batching. Select it with
//
//	exchange.Config{Transport: tcptransport.New(tcptransport.Config{})}
//
// # Connections
//
// A node listens on TransportOptions.ListenAddr, or on the first free port
// of Config.PortRange. Every connection starts with a wire.Hello from each
// side (the client's first); a peer that speaks another protocol version,
// or no qexchange protocol at all, gets a fatal ErrorResponse
// (CodeVersionMismatch or CodeProtocol) and is disconnected, and the error
// names its address.
//
// The client side keeps one connection per remote node (or
// Config.ConnectionsPerNode, with channels spread evenly over them, each
// new one on the least used), shared by every input channel that reads from that
// node. Channels hold references on it: OpenChannel takes one (dialing if
// needed; concurrent opens share one dial), ChannelLink.Close releases it,
// and the last release sends CloseRequest and closes the socket. A dial
// failure is an *exchange.ConnectionError naming the address, which the
// model retries with backoff.
//
// # Demultiplexing
//
// Frames are in TCP mode (wire.Options.StreamMode false): every
// channel-scoped message carries the receiverId, the consumer's input
// channel id. On the client one reader goroutine per connection routes
// each frame to its channel: a BufferResponse's payload is read straight
// into the buffer the channel's ChannelHandler.RequestBuffer returns (no
// intermediate copy; large payloads bypass the frame reader's buffer).
// Frames for a receiverId released recently (a bounded set is kept) are a
// normal race and are dropped; a receiverId never seen on the connection
// is a protocol error that closes it. On the server one reader goroutine
// per connection decodes the client's messages and drives the views
// (exchange.SubpartitionView) opened through the ViewProvider; the same rules
// apply to receiverIds, and a second PartitionRequest for an active
// receiverId is a protocol error.
//
// # Flow control and write coalescing
//
// Credit is Flink's: the PartitionRequest carries the channel's initial
// credit, AddCredit messages announce more, and the producer's reader
// sends one data buffer per credit. ChannelLink.NotifyCreditAvailable
// queues one AddCredit task per channel; the client's writer asks the
// handler for its unannounced credit only when it writes the task, so
// credit that accumulates meanwhile goes out in one message. Nothing in a
// ChannelLink blocks on the network.
//
// On the server one writer goroutine per connection serves the channels
// that have something to send, round-robin (chanproto.Scheduler): a
// channel is queued when it becomes available and re-queued at the tail
// after every message while it has more, so channels share the
// connection fairly. The writer gathers
// many frames into one writev (Config.WriteBatchBytes, 256 KiB by
// default): headers go into one reused byte slice, payloads are written
// from the network buffers themselves and released once written.
//
// # TLS
//
// Plain text is the default, for trusted networks only: anyone who can
// reach the port can read a partition. Setting any field of Config.TLS
// (Certificate or CertFile/KeyFile, PinnedSHA256, RootCAs or CAFile)
// turns on mutual TLS 1.3 (package exchange/tlsconf, shared with
// quictransport and rpc): every connection starts with a TLS handshake (ALPN
// "qexchange-tcp/1") before any frame, both sides present a certificate,
// and each verifies the other's by pinned SHA-256 or by CA; verification
// is never skipped. tlsconf.DeriveSelfSigned makes the certificate from a shared
// secret, so that nodes given the secret pin each other. A refused
// handshake is logged on the server as a warning naming the peer and the
// reason, a plain-text client gets a fatal ErrorResponse saying the node
// requires TLS, and the consumer's channels fail at once, without
// retries, with an *exchange.AuthError (exchange.ErrAuthentication)
// naming the peer. The writer's batches are sealed into TLS records that
// go out in one write per batch.
//
// # Bounds
//
// A server holds at most MaxConnections connections (default 1024) and
// MaxConnectionsPerAddress from one remote IP (default 128): one above is
// closed as soon as it is accepted (Stats.ConnectionsRefused; a warning at
// most once a second). A connection that holds no channel for
// IdleConnectionTimeout (default 1 min) is closed, so that connections
// that only said Hello do not pile up; one with a channel never is. A
// peer that provokes refusals and does not read them has its connection
// closed when MaxControlBytes (default 1 MiB) are queued. A Hello whose
// maximum frame size is below what the node sends is refused before any
// partition is touched.
//
// # Head-of-line blocking
//
// All channels between two nodes share one TCP byte stream. Credit keeps a
// slow consumer from holding buffers that other channels need, but a lost
// or delayed segment stalls every channel on the connection until TCP
// repairs it, and a consumer node that stops reading its socket stalls
// them all. That is TCP's nature and the reason the QUIC transport exists;
// ConnectionsPerNode > 1 spreads the risk without removing it.
//
// # Configuration
//
// Config's zero value is usable. Sockets, dialed and accepted, get
// TCP_NODELAY (unless DisableNoDelay), keepalive (KeepAlive, 5 s; negative
// disables) and TCP_USER_TIMEOUT (DeadPeerTimeout, 30 s: a silent peer or
// network partition fails the connection on both sides within it),
// SO_SNDBUF/SO_RCVBUF (SendBuffer, ReceiveBuffer) and
// TCP_CONGESTION (CongestionControl: an algorithm the kernel does not offer
// fails Listen with an error naming it and
// /proc/sys/net/ipv4/tcp_available_congestion_control). ConnectTimeout
// bounds dialing and the handshake. The Dial and Listen hooks let the
// sockets be created elsewhere, e.g. inside a network namespace. Logs go
// to TransportOptions.Logger (zerolog; the Environment's logger, disabled
// by default). (*Transport).Stats returns counters for benchmarks.
//
// # Errors
//
// Channels fail through ChannelHandler.OnError with the errors of package
// exchange: a non-fatal ErrorResponse becomes the error
// exchange.ErrorFromWire makes of it (for example
// *exchange.PartitionNotFoundError, which the model retries); a fatal one
// fails every channel of the connection with a *exchange.RemoteError; a
// dropped connection fails them with a *exchange.ConnectionError naming the
// peer as soon as the socket reports it; bad input from the peer is a
// *exchange.ProtocolError naming it: data without credit or an oversized
// buffer fails only that channel (and cancels its request), anything that
// breaks the framing fails the connection (docs/architecture.md, "failure
// policy"). Closing the transport fails
// the remaining channels with an error wrapping exchange.ErrClosed.
//
// A violation on the server that belongs to one channel (an AddCredit of
// 0 or less or one that overflows the channel's credit, a task event for
// another partition) fails that channel only: it is logged as a warning naming the
// peer and answered with a non-fatal ErrorResponse (CodeProtocol), and the
// connection's other channels go on, as on QUIC. Bad input that breaks
// the framing or names no channel (wrong magic, unknown message id, a
// frame above the maximum size, a truncated frame, a field the codec
// refuses, unknown or duplicate receiverIds,
// another protocol version) is logged the same way, answered with a fatal
// ErrorResponse, and closes that connection only; its views are released,
// and other connections go on.
package tcptransport
