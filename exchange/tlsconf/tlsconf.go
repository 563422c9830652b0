package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/qexchange/qexchange/exchange"
)

// ErrNoVerification: the configuration gives no way to verify the peer
// (no CA and no pinned fingerprint).
var ErrNoVerification = fmt.Errorf("%w: tlsconf: no way to verify the peer's certificate: set CAFile or RootCAs (CA verification) or PinnedSHA256 (see SelfSigned, DeriveSelfSigned); verification is never skipped", exchange.ErrInvalidConfig)

// ErrNoCertificate: the configuration has no certificate to present.
var ErrNoCertificate = fmt.Errorf("%w: tlsconf: no certificate: set Certificate (e.g. from SelfSigned or DeriveSelfSigned) or CertFile and KeyFile; both sides of a connection present one", exchange.ErrInvalidConfig)

// Options is the TLS material of a node, as the transports' Configs hold
// it. Both sides present a certificate and both verify the peer's. The
// certificate is Certificate if set, otherwise it is loaded from CertFile
// and KeyFile. The peer is accepted when its leaf certificate's SHA-256 is
// in PinnedSHA256, or when its chain verifies against RootCAs plus the
// certificates in CAFile.
type Options struct {
	CertFile, KeyFile, CAFile string
	Certificate               *tls.Certificate
	RootCAs                   *x509.CertPool
	PinnedSHA256              [][32]byte
	// ServerName is checked against the server's certificate when it is
	// verified by CA (default: the host of the dialed address).
	ServerName string
}

// Enabled reports whether o holds any TLS material: a transport for which
// TLS is optional (tcp) turns it on then.
func (o Options) Enabled() bool {
	return o.Certificate != nil || o.CertFile != "" || o.KeyFile != "" || o.CAFile != "" ||
		o.RootCAs != nil || len(o.PinnedSHA256) > 0
}

// Setup is a node's loaded TLS material, shared by both roles.
type Setup struct {
	pkg        string // the transport, for error messages and field names
	cert       tls.Certificate
	roots      *x509.CertPool // nil: pins only
	pins       map[[32]byte]struct{}
	serverName string
}

// New loads and checks o for the transport pkg ("tcptransport",
// "quictransport", "rpc"), which prefixes error messages, and names the
// Field of a *exchange.ConfigError as pkg's Config.TLS field
// ("quictransport.TLS.CertFile"). Every error matches
// exchange.ErrInvalidConfig.
func New(pkg string, o Options) (*Setup, error) {
	s := &Setup{pkg: pkg, serverName: o.ServerName, pins: make(map[[32]byte]struct{}, len(o.PinnedSHA256))}
	cfgErr := func(field string, value any, reason string) error {
		return &exchange.ConfigError{Field: pkg + ".TLS." + field, Value: value, Reason: reason}
	}
	switch {
	case o.Certificate != nil:
		s.cert = *o.Certificate
	case o.CertFile != "" || o.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, cfgErr("CertFile", o.CertFile+" / "+o.KeyFile, err.Error())
		}
		s.cert = cert
	default:
		return nil, fmt.Errorf("%s: %w", pkg, ErrNoCertificate)
	}
	if len(s.cert.Certificate) == 0 {
		return nil, fmt.Errorf("%s: %w", pkg, ErrNoCertificate)
	}
	for _, p := range o.PinnedSHA256 {
		s.pins[p] = struct{}{}
	}
	if o.RootCAs != nil {
		s.roots = o.RootCAs.Clone()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, cfgErr("CAFile", o.CAFile, err.Error())
		}
		if s.roots == nil {
			s.roots = x509.NewCertPool()
		}
		if !s.roots.AppendCertsFromPEM(pem) {
			return nil, cfgErr("CAFile", o.CAFile, "holds no PEM certificate")
		}
	}
	if s.roots == nil && len(s.pins) == 0 {
		return nil, fmt.Errorf("%s: %w", pkg, ErrNoVerification)
	}
	return s, nil
}

// Verify accepts rawCerts (the peer's chain, leaf first) if the leaf is
// pinned or the chain verifies against the CAs. serverName is checked
// against a server certificate verified by CA.
func (s *Setup) Verify(rawCerts [][]byte, isServerCert bool, serverName string) error {
	role := "client"
	if isServerCert {
		role = "server"
	}
	if len(rawCerts) == 0 {
		return fmt.Errorf("%s: the %s presented no certificate", s.pkg, role)
	}
	fp := fingerprintDER(rawCerts[0])
	if _, ok := s.pins[fp]; ok {
		return nil
	}
	if s.roots == nil {
		return fmt.Errorf("%s: %s certificate (sha256 %x) is not pinned", s.pkg, role, fp)
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, der := range rawCerts {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("%s: %s certificate: %w", s.pkg, role, err)
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
		return fmt.Errorf("%s: %s certificate (sha256 %x) is %s: %w", s.pkg, role, fp, how, err)
	}
	return nil
}

// ServerConfig returns the TLS configuration for accepting connections
// of the application protocols alpns.
func (s *Setup) ServerConfig(alpns ...string) *tls.Config {
	return s.serverConfig(alpns)
}

// ServerConfigLogging is ServerConfig that also calls refused with the
// peer's address and the reason when it refuses a client's certificate:
// for QUIC, whose handshake failures the application never sees.
func (s *Setup) ServerConfigLogging(refused func(peer string, err error), alpns ...string) *tls.Config {
	base := s.serverConfig(alpns)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			peer := "unknown"
			if chi.Conn != nil {
				peer = chi.Conn.RemoteAddr().String()
			}
			c := base.Clone()
			c.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
				err := base.VerifyPeerCertificate(raw, chains)
				if err != nil {
					refused(peer, err)
				}
				return err
			}
			return c, nil
		},
	}
}

func (s *Setup) serverConfig(alpns []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.cert},
		NextProtos:   alpns,
		// The client's certificate is required and verified below, by pin
		// or CA; crypto/tls's own chain check cannot do pins.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return refused(s.Verify(raw, false, ""))
		},
	}
}

// ClientConfig returns the TLS configuration for dialing host with the
// application protocol alpn.
func (s *Setup) ClientConfig(host, alpn string) *tls.Config {
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
			return refused(s.Verify(raw, true, name))
		},
	}
}

// HostOf returns the host of a dialed address (the address itself if it
// has no port), the default server name.
func HostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// IsHandshakeFailure reports whether err, from a TLS handshake or the
// first read after it, is a refusal by either side (a certificate not
// trusted, a peer that does not speak TLS, an alert) rather than a
// transport failure (timeout, reset) that may be temporary. In TLS 1.3 a
// client learns that the server refused its certificate only at its first
// read, as a "remote error" alert.
func IsHandshakeFailure(err error) bool {
	var (
		ae  tls.AlertError
		rec tls.RecordHeaderError
		ve  *tls.CertificateVerificationError
		oe  *net.OpError
	)
	return errors.Is(err, errRefused) || errors.As(err, &ae) || errors.As(err, &rec) || errors.As(err, &ve) ||
		(errors.As(err, &oe) && oe.Op == "remote error")
}

var errRefused = errors.New("tlsconf: peer certificate refused")

// refusedError marks our refusal of the peer's certificate for
// IsHandshakeFailure; its text is the reason.
type refusedError struct{ err error }

func (e refusedError) Error() string        { return e.err.Error() }
func (e refusedError) Unwrap() error        { return e.err }
func (e refusedError) Is(target error) bool { return target == errRefused }

func refused(err error) error {
	if err == nil {
		return nil
	}
	return refusedError{err}
}
