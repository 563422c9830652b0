package quictransport

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Name is the name the transport is registered and selected by.
const Name = "quic"

// ALPN is the TLS application protocol of the exchange over QUIC: the
// protocol name and its wire version. Peers that do not offer it fail the
// handshake.
const ALPN = "qexchange/1"

// Defaults of Config's zero values.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultWriteGather: see Config.WriteGather.
	DefaultWriteGather = 200 * time.Microsecond
	// NoWriteGather makes writers write as soon as they are woken.
	NoWriteGather time.Duration = -1
	// DefaultIdleTimeout and DefaultKeepAlivePeriod: a silent peer (a
	// network partition, a host that vanished, a killed process) fails
	// the connection on both sides within 30 s.
	DefaultIdleTimeout     = 30 * time.Second
	DefaultKeepAlivePeriod = 5 * time.Second
	// DefaultIdleConnectionTimeout: see Config.IdleConnectionTimeout.
	DefaultIdleConnectionTimeout = time.Minute
	// DefaultMaxConnections and DefaultMaxConnectionsPerAddress bound the
	// connections a node serves, as tcptransport's do.
	DefaultMaxConnections           = 1024
	DefaultMaxConnectionsPerAddress = 128
	// DefaultMaxIncomingStreams bounds the streams (channels) one peer
	// connection may hold open: enough for 8192 channels from one consumer
	// node, few enough that a peer opening streams without end cannot
	// exhaust the node's goroutines and memory.
	DefaultMaxIncomingStreams = 8192
	// DefaultMaxHandshakingStreams bounds the streams of one connection
	// that have not yet sent their Hello and PartitionRequest.
	DefaultMaxHandshakingStreams = 64
	// DefaultStreamReceiveWindow is the per-stream QUIC receive window
	// (initial = maximum, so auto-tuning never lags behind credit): 4 MiB,
	// at least 12 times the data the default credit allows in flight on one
	// channel (2 exclusive + 8 floating buffers of 32 KiB). See doc.go.
	DefaultStreamReceiveWindow = 4 << 20
	// DefaultConnectionReceiveWindow is the per-connection QUIC receive
	// window: 64 MiB, the default NetworkMemory, which bounds all the
	// credit a consumer node can grant. See doc.go.
	DefaultConnectionReceiveWindow = exchange.DefaultNetworkMemory
	// DefaultUDPBufferSize is the UDP socket send and receive buffer size
	// requested, as the quic-go documentation recommends (7.5 MB).
	DefaultUDPBufferSize = 7_500_000
)

// Config configures the QUIC transport. Zero values mean the documented
// defaults; TLS material has no default (see below).
type Config struct {
	// TLS is the node's TLS material (QUIC requires TLS 1.3): both sides
	// present a certificate and both verify the peer's (see
	// tlsconf.Options). With no certificate or no way to verify, New's
	// factory fails with a clear error: verification is never skipped.
	TLS tlsconf.Options

	// HandshakeTimeout bounds the QUIC handshake (default 10s), and the
	// time a new stream may take to send its Hello and PartitionRequest.
	HandshakeTimeout time.Duration
	// WriteGather is how long a connection's idle writer waits, once woken,
	// for the other channels of a flush to become ready, so that their
	// frames share packets (default 200µs; NoWriteGather writes at once).
	// It adds at most that much latency, and only to the first frame of a
	// burst: a busy writer never waits.
	WriteGather time.Duration
	// IdleTimeout closes a connection that received nothing for this long
	// (default 30s; QUIC's max_idle_timeout: the smaller of the two peers'
	// applies, and quic-go stretches it to at least 3 probe timeouts on a
	// slow path). KeepAlivePeriod (default 5s, or half of IdleTimeout if
	// that is less; it must be below IdleTimeout) sends a packet on a
	// quiet connection, so that a live peer never reaches it. A silent
	// network partition or a killed peer therefore fails the connection,
	// and every channel on it, on both sides within IdleTimeout.
	IdleTimeout, KeepAlivePeriod time.Duration
	// IdleConnectionTimeout closes a served connection that holds no
	// channel (no stream that sent its PartitionRequest) for this long
	// (default 1 min; negative: never), as tcptransport's does: a peer
	// that connects and opens no channel, or only streams that never send
	// a request (each closed after HandshakeTimeout), does not keep the
	// connection for ever. It must exceed the consumers' partition request
	// backoff.
	IdleConnectionTimeout time.Duration

	// ConnectionsPerNode is the number of QUIC connections to one remote
	// node (default 1, at most 64), all on the node's one UDP socket. With
	// K > 1 the channels to a node are spread evenly over K connections
	// (each new channel on the least used), so that K congestion
	// controllers share a lossy path.
	ConnectionsPerNode int

	// MaxConnections bounds the connections a node serves at once
	// (default 1024) and MaxConnectionsPerAddress those from one remote
	// IP address (default 128); a connection above either is closed with
	// ConnCodeTooMany as soon as its handshake completes, so that a flood
	// of connections leaves room for healthy consumers.
	MaxConnections, MaxConnectionsPerAddress int

	// MaxIncomingStreams is the number of concurrent streams (input
	// channels) a peer may open on one connection (default 8192).
	MaxIncomingStreams int64
	// MaxHandshakingStreams bounds the streams of one connection that
	// are still to send their Hello and PartitionRequest (default 64):
	// further streams wait to be accepted, so a peer that opens streams
	// and sends nothing (each is closed after HandshakeTimeout) stalls
	// only its own connection.
	MaxHandshakingStreams int
	// StreamReceiveWindow and ConnectionReceiveWindow are QUIC's flow
	// control windows (defaults DefaultStreamReceiveWindow and
	// DefaultConnectionReceiveWindow), sized so that credit, not QUIC flow
	// control, is the binding limit. See doc.go for the arithmetic.
	StreamReceiveWindow, ConnectionReceiveWindow uint64

	// QlogDir, if set, receives a qlog trace (quic-go's JSON-SEQ format,
	// <connection id>_<client|server>.sqlog) of every connection, to trace
	// a stall to the packet whose loss caused it. The directory is created
	// if needed; one that cannot be written is a configuration error.
	QlogDir string

	// ExtraProtocols lets other protocols share the node's UDP socket: a
	// connection that negotiates one of these TLS application protocols
	// (ALPN) is handed to its func (on a goroutine of its own, which owns
	// the connection) instead of serving the exchange. Peers dial them
	// with Transport.DialProtocol. The TLS material and its verification
	// are the exchange's.
	ExtraProtocols map[string]func(*quic.Conn)

	// ListenPacket creates the node's UDP socket (default
	// net.ListenPacket); the link emulator uses it to create sockets in
	// network namespaces.
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// UDPBufferSize is the socket send and receive buffer size requested
	// (default DefaultUDPBufferSize).
	UDPBufferSize int
}

// MaxConnectionsPerNode bounds Config.ConnectionsPerNode.
const MaxConnectionsPerNode = 64

// StreamReceiveWindowFor is the default per-stream receive window for a
// segment size: DefaultStreamReceiveWindow, or 64 maximum-size frames if
// that is more, so that large segment sizes keep the same head room over
// credit. Raw QUIC baselines use it to match the transport's settings.
func StreamReceiveWindowFor(segmentSize int) uint64 {
	return max(DefaultStreamReceiveWindow, 64*uint64(wire.MaxFrameSizeFor(segmentSize)))
}

// withDefaults fills the zero values of c with the documented defaults.
func (c Config) withDefaults(segmentSize int) Config {
	c.ConnectionsPerNode = cmp.Or(c.ConnectionsPerNode, 1)
	c.WriteGather = cmp.Or(c.WriteGather, DefaultWriteGather)
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshakeTimeout)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.KeepAlivePeriod = cmp.Or(c.KeepAlivePeriod, min(DefaultKeepAlivePeriod, c.IdleTimeout/2))
	c.IdleConnectionTimeout = cmp.Or(c.IdleConnectionTimeout, DefaultIdleConnectionTimeout)
	c.MaxConnections = cmp.Or(c.MaxConnections, DefaultMaxConnections)
	c.MaxConnectionsPerAddress = cmp.Or(c.MaxConnectionsPerAddress, DefaultMaxConnectionsPerAddress)
	c.MaxIncomingStreams = cmp.Or(c.MaxIncomingStreams, DefaultMaxIncomingStreams)
	c.MaxHandshakingStreams = cmp.Or(c.MaxHandshakingStreams, DefaultMaxHandshakingStreams)
	c.StreamReceiveWindow = cmp.Or(c.StreamReceiveWindow, StreamReceiveWindowFor(segmentSize))
	c.ConnectionReceiveWindow = cmp.Or(c.ConnectionReceiveWindow, max(DefaultConnectionReceiveWindow, 4*c.StreamReceiveWindow))
	c.UDPBufferSize = cmp.Or(c.UDPBufferSize, DefaultUDPBufferSize)
	return c
}

// validate checks c after withDefaults; the TLS material is checked by
// newTLSSetup.
func (c Config) validate() error {
	switch {
	case c.ConnectionsPerNode < 1 || c.ConnectionsPerNode > MaxConnectionsPerNode:
		return configErr("ConnectionsPerNode", c.ConnectionsPerNode, "must be in 1..64")
	case c.WriteGather < 0 && c.WriteGather != NoWriteGather:
		return configErr("WriteGather", c.WriteGather, "must be >= 0 or NoWriteGather")
	case c.HandshakeTimeout < 0:
		return configErr("HandshakeTimeout", c.HandshakeTimeout, "must be >= 0")
	case c.IdleTimeout < 0:
		return configErr("IdleTimeout", c.IdleTimeout, "must be >= 0")
	case c.KeepAlivePeriod < 0:
		return configErr("KeepAlivePeriod", c.KeepAlivePeriod, "must be >= 0")
	case c.KeepAlivePeriod >= c.IdleTimeout:
		return configErr("KeepAlivePeriod", c.KeepAlivePeriod, fmt.Sprintf("must be below IdleTimeout (%v), or a live peer times out", c.IdleTimeout))
	case c.MaxConnections < 0:
		return configErr("MaxConnections", c.MaxConnections, "must be >= 0")
	case c.MaxConnectionsPerAddress < 0:
		return configErr("MaxConnectionsPerAddress", c.MaxConnectionsPerAddress, "must be >= 0")
	case c.MaxIncomingStreams < 0:
		return configErr("MaxIncomingStreams", c.MaxIncomingStreams, "must be >= 0")
	case c.MaxHandshakingStreams < 0:
		return configErr("MaxHandshakingStreams", c.MaxHandshakingStreams, "must be >= 0")
	case c.UDPBufferSize < 0:
		return configErr("UDPBufferSize", c.UDPBufferSize, "must be >= 0")
	}
	for alpn, serve := range c.ExtraProtocols {
		if alpn == "" || alpn == ALPN || serve == nil {
			return configErr("ExtraProtocols", alpn, "needs a non-empty ALPN other than "+ALPN+" and a non-nil func")
		}
	}
	if c.QlogDir != "" {
		if err := checkWritableDir(c.QlogDir); err != nil {
			return configErr("QlogDir", c.QlogDir, err.Error())
		}
	}
	return nil
}

func configErr(field string, value any, reason string) error {
	return &exchange.ConfigError{Field: "quictransport." + field, Value: value, Reason: reason}
}

// quicConfig returns quic-go's configuration for one side; the tracer
// writes qlog traces (nil: none).
func (c Config) quicConfig(server bool, tracer func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace) *quic.Config {
	qc := &quic.Config{
		HandshakeIdleTimeout:           c.HandshakeTimeout,
		MaxIdleTimeout:                 c.IdleTimeout,
		KeepAlivePeriod:                c.KeepAlivePeriod,
		InitialStreamReceiveWindow:     c.StreamReceiveWindow,
		MaxStreamReceiveWindow:         c.StreamReceiveWindow,
		InitialConnectionReceiveWindow: c.ConnectionReceiveWindow,
		MaxConnectionReceiveWindow:     c.ConnectionReceiveWindow,
		MaxIncomingStreams:             c.MaxIncomingStreams,
		MaxIncomingUniStreams:          -1,
		Tracer:                         tracer,
	}
	if !server {
		// Only consumers open streams.
		qc.MaxIncomingStreams = -1
	}
	return qc
}
