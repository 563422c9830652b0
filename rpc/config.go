package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange/tlsconf"
)

// Transport names.
const (
	TCP  = "tcp"
	QUIC = "quic"
)

// Defaults of Config's zero values.
const (
	DefaultListenAddr       = "127.0.0.1:0"
	DefaultCallTimeout      = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	DefaultKeepAlivePeriod  = 5 * time.Second
	DefaultMaxMessageSize   = 1 << 20
	DefaultMaxConnections   = 1024
	DefaultMaxInFlight      = 256
	DefaultMailboxSize      = 1024
	DefaultShutdownTimeout  = 10 * time.Second
)

// Config configures a Service. Zero values mean the documented defaults;
// negative values are errors. TLS material has no default.
type Config struct {
	// Transport is TCP or QUIC (default QUIC).
	Transport string
	// ListenAddr is where the service accepts connections (default
	// 127.0.0.1:0). NoListen makes a service that accepts only the
	// connections handed to ServeTCPConn / ServeQUICConn; on QUIC it still
	// binds a UDP socket on ListenAddr to dial from, unless DialQUIC is
	// set (the shared-socket mode: no socket of its own at all).
	ListenAddr string
	NoListen   bool

	// TLS is the node's material for mutual TLS 1.3 on both transports,
	// as the data plane's transports take it (tlsconf.Options): both
	// sides present a certificate and verify the peer's. Without a
	// certificate or a way to verify, NewService fails: verification is
	// never skipped.
	TLS tlsconf.Options

	// CallTimeout bounds a call whose context has no deadline (default
	// 10s): every call ends, as in Flink, where every ask has a timeout.
	CallTimeout time.Duration
	// HandshakeTimeout bounds dialing, TLS and the gateway handshake
	// (default 10s).
	HandshakeTimeout time.Duration
	// IdleTimeout and KeepAlivePeriod detect dead peers (defaults 30s
	// and 5s): QUIC's idle timeout and keep-alives, TCP keep-alive.
	IdleTimeout, KeepAlivePeriod time.Duration
	// MaxMessageSize bounds one encoded message, request or response
	// (default 1 MiB). Larger ones are refused with ErrTooLarge.
	MaxMessageSize int
	// MaxConnections bounds the accepted connections (default 1024); more
	// are closed at once.
	MaxConnections int
	// MaxInFlight bounds the calls in flight on one connection, in each
	// direction (default 256). On QUIC it is the peer's stream limit; on
	// TCP a full connection stops being read (back pressure), and a
	// client waits for a slot within its call's deadline.
	MaxInFlight int
	// MailboxSize is the default capacity of an endpoint's mailbox
	// (default 1024); a full mailbox rejects with ErrMailboxFull.
	MailboxSize int
	// ShutdownTimeout bounds the OnStop hooks Close runs (default 10s).
	ShutdownTimeout time.Duration

	// DialTCP creates TCP client sockets (default: a net.Dialer).
	DialTCP func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialQUIC dials a QUIC connection (default: from the service's own
	// quic.Transport). A node that shares one UDP socket between the data
	// plane and the control plane sets it to dial from that socket; the
	// TLS configuration it is given offers ALPN.
	DialQUIC func(ctx context.Context, addr string, tlsConf *tls.Config, quicConf *quic.Config) (*quic.Conn, error)
	// ListenPacket creates the UDP socket of a standalone QUIC service
	// (default net.ListenPacket).
	ListenPacket func(network, addr string) (net.PacketConn, error)

	// Logger receives connection-level events (default: disabled).
	Logger zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.Transport == "" {
		c.Transport = QUIC
	}
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.CallTimeout, DefaultCallTimeout)
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.KeepAlivePeriod, DefaultKeepAlivePeriod)
	def(&c.ShutdownTimeout, DefaultShutdownTimeout)
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	defInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	defInt(&c.MaxConnections, DefaultMaxConnections)
	defInt(&c.MaxInFlight, DefaultMaxInFlight)
	defInt(&c.MailboxSize, DefaultMailboxSize)
	return c
}

func (c Config) validate() error {
	switch {
	case c.Transport != TCP && c.Transport != QUIC:
		return &ConfigError{"Transport", c.Transport, `must be "tcp" or "quic"`}
	case c.CallTimeout < 0:
		return &ConfigError{"CallTimeout", c.CallTimeout, "must be >= 0"}
	case c.HandshakeTimeout < 0:
		return &ConfigError{"HandshakeTimeout", c.HandshakeTimeout, "must be >= 0"}
	case c.IdleTimeout < 0:
		return &ConfigError{"IdleTimeout", c.IdleTimeout, "must be >= 0"}
	case c.KeepAlivePeriod < 0:
		return &ConfigError{"KeepAlivePeriod", c.KeepAlivePeriod, "must be >= 0"}
	case c.ShutdownTimeout < 0:
		return &ConfigError{"ShutdownTimeout", c.ShutdownTimeout, "must be >= 0"}
	case c.MaxMessageSize < 0:
		return &ConfigError{"MaxMessageSize", c.MaxMessageSize, "must be >= 0"}
	case c.MaxMessageSize > 0 && c.MaxMessageSize < headerSize+64:
		return &ConfigError{"MaxMessageSize", c.MaxMessageSize, fmt.Sprintf("must be at least %d", headerSize+64)}
	case c.MaxConnections < 0:
		return &ConfigError{"MaxConnections", c.MaxConnections, "must be >= 0"}
	case c.MaxInFlight < 0:
		return &ConfigError{"MaxInFlight", c.MaxInFlight, "must be >= 0"}
	case c.MailboxSize < 0:
		return &ConfigError{"MailboxSize", c.MailboxSize, "must be >= 0"}
	}
	return nil
}

// peerTLS is the node's TLS material (package tlsconf, shared with the
// data plane's transports) with the control plane's ALPN.
type peerTLS struct{ setup *tlsconf.Setup }

func newPeerTLS(c Config) (*peerTLS, error) {
	setup, err := tlsconf.New("rpc", c.TLS)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &peerTLS{setup}, nil
}

// serverTLS offers ALPN and requires the client's certificate, verified
// by pin or CA.
func (v *peerTLS) serverTLS() *tls.Config { return v.setup.ServerConfig(ALPN) }

// clientTLS also refuses a server that did not negotiate ALPN.
func (v *peerTLS) clientTLS(host string) *tls.Config {
	c := v.setup.ClientConfig(host, ALPN)
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != ALPN {
			return fmt.Errorf("rpc: server did not negotiate ALPN %q (got %q)", ALPN, cs.NegotiatedProtocol)
		}
		return nil
	}
	return c
}

// errBadALPN: a connection handed to the service did not negotiate the
// control plane's ALPN.
var errBadALPN = errors.New("rpc: connection did not negotiate ALPN " + ALPN)
