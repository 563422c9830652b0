package quictransport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/qexchange/qexchange/exchange"
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
	NoWriteGather             time.Duration = -1
	DefaultIdleTimeout                      = 30 * time.Second
	DefaultKeepAlivePeriod                  = 5 * time.Second
	DefaultMaxIncomingStreams               = 1 << 16
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
	// TLS (QUIC requires TLS 1.3). Both sides present a certificate and
	// both verify the peer's (mutual TLS). The certificate is
	// Certificate if set, otherwise it is loaded from CertFile and
	// KeyFile. The peer is accepted when its leaf certificate's SHA-256 is
	// in PinnedSHA256, or when its chain verifies against RootCAs plus the
	// certificates in CAFile. With neither, New's factory fails with a
	// clear error: verification is never skipped silently.
	CertFile, KeyFile, CAFile string
	Certificate               *tls.Certificate
	RootCAs                   *x509.CertPool
	PinnedSHA256              [][32]byte
	// ServerName is the name checked against the server's certificate
	// when it is verified by CA (default: the host of the dialed address).
	ServerName string

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
	// (default 30s); KeepAlivePeriod (default 5s) keeps idle connections
	// open and detects dead peers.
	IdleTimeout, KeepAlivePeriod time.Duration

	// ConnectionsPerNode is the number of QUIC connections to one remote
	// node (default 1, at most 64), all on the node's one UDP socket. With
	// K > 1 the channels to a node are spread evenly over K connections
	// (each new channel on the least used), so that K congestion
	// controllers share a lossy path.
	ConnectionsPerNode int

	// MaxIncomingStreams is the number of concurrent streams (input
	// channels) a peer may open on one connection (default 1<<16).
	MaxIncomingStreams int64
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
	if c.ConnectionsPerNode == 0 {
		c.ConnectionsPerNode = 1
	}
	if c.WriteGather == 0 {
		c.WriteGather = DefaultWriteGather
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.KeepAlivePeriod == 0 {
		c.KeepAlivePeriod = DefaultKeepAlivePeriod
	}
	if c.MaxIncomingStreams == 0 {
		c.MaxIncomingStreams = DefaultMaxIncomingStreams
	}
	if c.StreamReceiveWindow == 0 {
		c.StreamReceiveWindow = StreamReceiveWindowFor(segmentSize)
	}
	if c.ConnectionReceiveWindow == 0 {
		c.ConnectionReceiveWindow = max(DefaultConnectionReceiveWindow, 4*c.StreamReceiveWindow)
	}
	if c.UDPBufferSize == 0 {
		c.UDPBufferSize = DefaultUDPBufferSize
	}
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
	case c.MaxIncomingStreams < 0:
		return configErr("MaxIncomingStreams", c.MaxIncomingStreams, "must be >= 0")
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

// ErrNoVerification: the configuration gives no way to verify the peer
// (no CA and no pinned fingerprint).
var ErrNoVerification = fmt.Errorf("%w: quictransport: no way to verify the peer's certificate: set CAFile or RootCAs (CA verification) or PinnedSHA256 (see SelfSigned, DeriveSelfSigned); verification is never skipped", exchange.ErrInvalidConfig)

// ErrNoCertificate: the configuration has no certificate to present.
var ErrNoCertificate = fmt.Errorf("%w: quictransport: no certificate: set Certificate (e.g. from SelfSigned or DeriveSelfSigned) or CertFile and KeyFile; both sides of a connection present one", exchange.ErrInvalidConfig)

// tlsSetup holds what both TLS roles share.
type tlsSetup struct {
	cert       tls.Certificate
	roots      *x509.CertPool // nil: pins only
	pins       map[[32]byte]struct{}
	serverName string
}

func newTLSSetup(c Config) (*tlsSetup, error) {
	s := &tlsSetup{serverName: c.ServerName, pins: make(map[[32]byte]struct{}, len(c.PinnedSHA256))}
	switch {
	case c.Certificate != nil:
		s.cert = *c.Certificate
	case c.CertFile != "" || c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, configErr("CertFile", c.CertFile+" / "+c.KeyFile, err.Error())
		}
		s.cert = cert
	default:
		return nil, ErrNoCertificate
	}
	if len(s.cert.Certificate) == 0 {
		return nil, ErrNoCertificate
	}
	for _, p := range c.PinnedSHA256 {
		s.pins[p] = struct{}{}
	}
	if c.RootCAs != nil {
		s.roots = c.RootCAs.Clone()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, configErr("CAFile", c.CAFile, err.Error())
		}
		if s.roots == nil {
			s.roots = x509.NewCertPool()
		}
		if !s.roots.AppendCertsFromPEM(pem) {
			return nil, configErr("CAFile", c.CAFile, "holds no PEM certificate")
		}
	}
	if s.roots == nil && len(s.pins) == 0 {
		return nil, ErrNoVerification
	}
	return s, nil
}

// verify accepts rawCerts (the peer's chain, leaf first) if the leaf is
// pinned or the chain verifies against the CAs. serverName is checked
// against a server certificate verified by CA ("" for client
// certificates).
func (s *tlsSetup) verify(rawCerts [][]byte, isServerCert bool, serverName string) error {
	role := "client"
	if isServerCert {
		role = "server"
	}
	if len(rawCerts) == 0 {
		return fmt.Errorf("quictransport: the %s presented no certificate", role)
	}
	fp := fingerprintDER(rawCerts[0])
	if _, ok := s.pins[fp]; ok {
		return nil
	}
	if s.roots == nil {
		return fmt.Errorf("quictransport: %s certificate (sha256 %x) is not pinned", role, fp)
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, der := range rawCerts {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("quictransport: %s certificate: %w", role, err)
		}
		certs[i] = c
	}
	opts := x509.VerifyOptions{Roots: s.roots, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if isServerCert {
		opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		opts.DNSName = serverName
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		how := "not signed by a trusted CA"
		if len(s.pins) > 0 {
			how = "neither pinned nor signed by a trusted CA"
		}
		return fmt.Errorf("quictransport: %s certificate (sha256 %x) is %s: %w", role, fp, how, err)
	}
	return nil
}

// serverConfig returns the TLS configuration for accepting connections
// of the protocols alpns.
func (s *tlsSetup) serverConfig(alpns ...string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.cert},
		NextProtos:   alpns,
		// The client's certificate is required and verified below, by pin
		// or CA; crypto/tls's own chain check cannot do pins.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return s.verify(raw, false, "")
		},
	}
}

// clientConfig returns the TLS configuration for dialing host with the
// application protocol alpn.
func (s *tlsSetup) clientConfig(host, alpn string) *tls.Config {
	name := s.serverName
	if name == "" {
		name = host
	}
	cert := s.cert
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		NextProtos: []string{alpn},
		ServerName: name,
		// Not skipped: crypto/tls's built-in check is replaced by
		// VerifyPeerCertificate, which verifies by pin or CA (with the
		// server name) and fails the handshake otherwise.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return s.verify(raw, true, name)
		},
	}
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
