// Package quictransport is the QUIC exchange.Transport ("quic"): one
// quic-go Transport (one UDP socket) per node for listening and dialing,
// one connection per remote node shared by all channels to it (or
// Config.ConnectionsPerNode, up to 64, with channels spread evenly over
// them, all on the one socket), and one bidirectional QUIC
// stream per input channel. The channel protocol itself (credit, the
// receive sequence, the failure policy) is package chanproto's, shared
// with the other transports; this package keeps streams, priorities and
// TLS.
//
// # Why a stream per channel
//
// On TCP every channel to a node shares one ordered byte stream, so one
// lost segment holds back the data of every channel behind it
// (head-of-line blocking). QUIC orders bytes per stream: a lost packet
// holds back only the streams whose frames it carried, while the other
// channels' data is delivered as it arrives. Because a stream belongs to
// exactly one channel, frames on it carry no receiverId (wire.Options
// StreamMode), and cancelling a channel is a stream reset, not a message.
// Congestion control and loss recovery stay per connection: a loss still
// slows the connection's sending rate for every channel, but it never makes
// one channel's data wait for another's retransmission.
//
// # Streams
//
// A consumer's RemoteInputChannel opens a stream and sends Hello and the
// PartitionRequest (initial credit included). The producer answers with its
// Hello, then BufferResponses, BacklogAnnouncements and, to fail the
// channel, an ErrorResponse. The consumer sends AddCredit,
// ResumeConsumption, AckAllUserRecordsProcessed, TaskEventRequest and
// NewBufferSize on the same stream.
//
// The producer runs one writer goroutine per connection, driven by a
// chanproto.Scheduler: it serves the ready streams round robin and queues
// each small frame (header and payload up to 1200 bytes) with
// TryWriteAll, which copies it into the stream's next STREAM frame
// without blocking. Frames of several streams queued back to back before
// quic-go's send loop runs leave in one packet; a goroutine per stream
// made each flush leave in a packet of its own (4.6x TCP's packet count at
// low load). A large frame, or one QUIC flow control does not let through
// at once, is written with a blocking Write by a goroutine of its own
// while the stream is held by the scheduler (the payload straight from the
// network buffer, released after the write): one slow stream never stalls
// the others. Per stream the producer also runs a reader goroutine for
// the consumer's messages; the consumer runs a reader goroutine per
// stream (it reads each payload straight into a credit-backed buffer from
// ChannelHandler.RequestBuffer). The consumer's messages of all streams of
// a connection go through one chanproto.ControlQueue, written by the
// connection's goroutine back to back with TryWriteAll, so that the
// AddCredits of many streams share packets too (NotifyCreditAvailable
// only queues, so it never blocks; the writer asks TakeUnannouncedCredit
// when it writes, so credit announced in between goes out in one
// AddCredit); a stream held back by QUIC flow control gets a goroutine
// with a blocking Write, its later messages following in order. Frames are read
// by a wire.Reader with a 512-byte buffer (wire.NewReaderSize): the default
// 64 KiB per stream would cost 256 MiB per side at 4096 channels, and
// payloads skip the buffer anyway.
//
// # Errors
//
// Bad input on a stream (a wrong magic, an unknown message id, a frame
// above the maximum size, a truncated frame, AddCredit <= 0 or
// overflowing the credit, a task event for another partition, a Hello of
// another version, a message in the wrong direction) fails only that
// stream: the producer sends an ErrorResponse (CodeProtocol or
// CodeVersionMismatch) whose message names the peer, closes its sending
// side after it (FIN, so the message is delivered reliably, which a
// RESET_STREAM would not guarantee) and stops reading with
// STOP_SENDING(StreamCodeProtocol); the other streams of the connection go
// on. A consumer that gets garbage fails the channel with a
// *exchange.ProtocolError naming the peer and resets the stream. The
// application error codes are:
//
//	StreamCodeCancelled  0x51580001  channel closed by the consumer, or served no more
//	StreamCodeProtocol   0x51580002  bad input on this stream
//	StreamCodeRefused    0x51580003  partition request answered with an ErrorResponse
//	ConnCodeUnused       0x0         connection closed: its last channel was released
//	ConnCodeIdle         0x51580011  served connection closed: no channel for IdleConnectionTimeout
//	ConnCodeTooMany      0x51580012  connection refused: MaxConnections or MaxConnectionsPerAddress reached
//	ConnCodeShutdown     0x51580010  connection closed: the node closed its transport
//
// A broken connection (CONNECTION_CLOSE, idle timeout, stateless reset)
// fails every channel on it with a *exchange.ConnectionError naming the
// peer; a node that closes its transport sends CONNECTION_CLOSE first, so
// its peers fail at once instead of after the idle timeout. A failed dial
// is a *exchange.ConnectionError too (the model retries with backoff),
// except a refused TLS handshake (a certificate not pinned or not signed
// by a trusted CA, on either side): that is an *exchange.AuthError naming
// the peer, which is not retried.
// Channels of a transport that is being closed fail with ErrClosed.
//
// # Flow control: credit binds, not QUIC
//
// The sender may have at most credit x (segment + header) bytes of a
// channel unread by the consumer: each credit is one buffer the consumer
// holds for it, and with the defaults (2 exclusive buffers per channel, 8
// floating per gate, 32 KiB segments) that is at most 10 x 32.04 KiB =
// 320 KiB per channel. The consumer's stream reader never waits for the
// application (RequestBuffer either hands out a credit-backed buffer or
// fails the channel), so a stream's received bytes are consumed as soon
// as its goroutine runs, and a stalled consumer simply stops granting
// credit: its stream then holds no QUIC-buffered data at all.
//
//   - Stream window (StreamReceiveWindow, default max(4 MiB, 64 maximum
//     frames), initial = maximum so auto-tuning never lags): 12.8x the
//     default per-channel credit, so QUIC flow control never blocks a
//     stream before credit does, and above the bandwidth-delay product of
//     a single stream on a 10 Gbit/s path with ~3 ms RTT. Credit above
//     4 MiB per channel (128 buffers of 32 KiB) needs a larger window.
//   - Connection window (ConnectionReceiveWindow, default
//     max(64 MiB, 4 x stream window)): every credit a consumer node grants
//     is a buffer of its network pool, so all channels of a connection
//     together never have more unread data in flight than the consumer's
//     NetworkMemory (default 64 MiB = this window). The connection window
//     therefore never binds before credit either, and since drained
//     streams return their window at once, one stalled channel cannot hold
//     connection window that others need. Set it to at least the consumer's
//     NetworkMemory when that is raised. It is also the most one connection
//     can make quic-go buffer.
//   - MaxIncomingStreams (default 1<<16) bounds the channels per
//     connection; the tests run 4096 on one connection.
//
// # TLS
//
// QUIC requires TLS 1.3; ALPN is "qexchange/1" (protocol and version).
// Both sides present a certificate and verify the peer's (mutual TLS),
// with the material in Config.TLS (package exchange/tlsconf, shared with
// tcptransport and rpc): by pin (PinnedSHA256, the SHA-256 of the leaf
// certificate, see tlsconf.Fingerprint) or by CA (RootCAs / CAFile, with
// the server name checked for server certificates). Verification is never
// skipped: with neither, the factory fails with tlsconf.ErrNoVerification.
// tlsconf.SelfSigned makes an ephemeral certificate to pin;
// tlsconf.DeriveSelfSigned derives one
// deterministically from a shared secret, so processes started with the
// same secret pin each other without exchanging files (whoever knows the
// secret can join).
//
// # Priorities
//
// quic-go (>= 0.62) schedules streams by RFC 9218 urgency
// (Stream.SetPriority). The model already lets priority events (unaligned
// checkpoint barriers, wire.PriorityBarrier and PriorityEventBuffer)
// overtake data queued in their subpartition; on the wire, the producer
// raises the stream's urgency (0, above the default 3) before writing a
// priority event, so quic-go packs the stream's pending bytes, the event
// among them, before other streams' bulk data. A stream's bytes stay in
// order, so the urgency drops back only after the next write long enough
// (> one packet) that it cannot return before quic-go packed every
// earlier byte of the stream, the event included.
//
// # Diagnostics and other protocols
//
// Config.QlogDir writes a qlog trace of every connection (quic-go's
// JSON-SEQ format), to trace a stall to the packet whose loss caused it.
// Config.ExtraProtocols lets another protocol (a control-plane RPC) share
// the node's UDP socket, told apart by ALPN: such connections are handed
// to their func; Transport.DialProtocol dials them with the same TLS
// material. StreamReceiveWindowFor gives the default stream window, for
// raw QUIC baselines that must match the transport's settings.
//
// # UDP socket buffers
//
// The transport raises the socket's receive and send buffers to
// UDPBufferSize (default 7.5 MB, as quic-go recommends; on Linux it forces
// past net.core.rmem_max / wmem_max when it has CAP_NET_ADMIN). When the
// kernel caps them it logs one warning through TransportOptions.Logger
// with the sysctl to run (sysctl -w net.core.rmem_max=... wmem_max=...).
// quic-go then finds the buffers as large as it can get them; if they are
// below its own 7 MiB target it would repeat the warning through the
// standard library's global logger, so the transport sets
// QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true in that case, unless the
// variable is already set. (quic-go raises the buffers to at least 7 MiB
// itself, so a smaller UDPBufferSize has no effect.)
//
// Logging goes to TransportOptions.Logger only (disabled by default).
package quictransport
