package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/qexchange/qexchange/bench/raw"
	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// Hooks let later work (the link emulator) create the transports' sockets
// elsewhere, e.g. inside network namespaces. Nil fields: the defaults.
type Hooks struct {
	Dial         tcptransport.DialFunc
	Listen       tcptransport.ListenFunc
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// ProducerListen and ConsumerListen are the bench environments'
	// listen addresses (default 127.0.0.1:0).
	ProducerListen, ConsumerListen string
	// TCPCongestion is TCP_CONGESTION for tcp and raw-tcp sockets (""
	// keeps the kernel's default).
	TCPCongestion string
	// ProgressEvery is the interval of the one-line progress reports on
	// a non-terminal stderr (0: every 10 s); tests shorten it.
	ProgressEvery time.Duration
	// Client, if set, creates the sockets of the consumer side (the
	// consumer environment, the raw baselines' reading side) while the
	// fields above serve the producer side: on the emulated link the two
	// sides live in different network namespaces.
	Client *Hooks
}

// forRole returns the hooks of the producer or the consumer side.
func (h Hooks) forRole(role string) Hooks {
	if role == "consumer" && h.Client != nil {
		c := *h.Client
		c.TCPCongestion = h.TCPCongestion
		return c
	}
	return h
}

// tlsMaterial is what both nodes present and accept (QUIC always; TCP
// when a TLS flag is given).
type tlsMaterial struct {
	cert tls.Certificate
	pin  [32]byte
	// files instead of cert/pin
	certFile, keyFile, caFile string
	// serverName is the name in cert ("": the dialed host, for files)
	serverName string
}

// inProcessTLS is an ephemeral self-signed certificate both in-process
// nodes present and pin.
func inProcessTLS() (*tlsMaterial, error) {
	cert, pin, err := tlsconf.SelfSigned("localhost", "127.0.0.1", "::1")
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return &tlsMaterial{cert: cert, pin: pin, serverName: "localhost"}, nil
}

// crossProcessTLS: files when given, else a certificate derived from the
// shared secret (default: from the job name, which anyone who knows the
// job can derive too: defaultSecret says so).
func crossProcessTLS(o *options) (m *tlsMaterial, defaultSecret bool, err error) {
	if o.tlsCert != "" {
		return &tlsMaterial{certFile: o.tlsCert, keyFile: o.tlsKey, caFile: o.tlsCA}, false, nil
	}
	secret := o.secret
	if secret == "" {
		secret, defaultSecret = secretLabel+o.job, true
	}
	cert, pin, err := tlsconf.DeriveSelfSigned(secret)
	if err != nil {
		return nil, false, err
	}
	return &tlsMaterial{cert: cert, pin: pin, serverName: "qexchange"}, defaultSecret, nil
}

// options is m as the transports' Config.TLS (on tcp, it turns TLS on).
func (m *tlsMaterial) options() tlsconf.Options {
	if m.certFile != "" {
		return tlsconf.Options{CertFile: m.certFile, KeyFile: m.keyFile, CAFile: m.caFile}
	}
	c := m.cert
	return tlsconf.Options{Certificate: &c, PinnedSHA256: [][32]byte{m.pin}, ServerName: m.serverName}
}

// tcpWantsTLS: on tcp, TLS is opt-in, by any TLS flag.
func (o *options) tcpWantsTLS() bool {
	return o.secret != "" || o.tlsCert != "" || o.tlsKey != "" || o.tlsCA != ""
}

// checkTLSFiles loads the -tls-* files, so that a missing or unreadable
// one is a usage error before anything listens.
func (o *options) checkTLSFiles() error {
	if o.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey); err != nil {
			return usagef("-tls-cert %s / -tls-key %s: %v", o.tlsCert, o.tlsKey, err)
		}
	}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return usagef("-tls-ca: %v", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return usagef("-tls-ca %s holds no PEM certificate", o.tlsCA)
		}
	}
	return nil
}

// transportSettings are the flags that configure both transports
// (-connections, -qlog). All transport construction is in this file.
type transportSettings struct {
	connections int    // connections per peer node (>= 1)
	qlogDir     string // "" = no qlog
}

func (o *options) transportSettings() transportSettings {
	return transportSettings{connections: o.rep.connections, qlogDir: o.rep.qlogDir}
}

// tcpConfig is the TCP transport's configuration (defaults + hooks); the
// raw TCP baseline mirrors it.
func tcpConfig(h Hooks, ts transportSettings) tcptransport.Config {
	return tcptransport.Config{Dial: h.Dial, Listen: h.Listen, CongestionControl: h.TCPCongestion, ConnectionsPerNode: ts.connections}
}

// applyQUICSettings sets -connections and -qlog on a QUIC configuration.
func applyQUICSettings(c *quictransport.Config, ts transportSettings) {
	c.ConnectionsPerNode, c.QlogDir = ts.connections, ts.qlogDir
}

// rawTCPOptions: the producer side listens and writes, the consumer side
// dials and reads.
func rawTCPOptions(h Hooks) raw.TCPOptions {
	c := h.forRole("consumer")
	return raw.TCPOptions{KeepAlive: tcptransport.DefaultKeepAlive, Dial: c.Dial, Listen: h.Listen, Addr: h.ProducerListen, CongestionControl: h.TCPCongestion}
}

func rawQUICOptions(m *tlsMaterial, segmentSize int, h Hooks) raw.QUICOptions {
	o := raw.QUICOptions{
		ListenPacket: h.ListenPacket,
		Addr:         h.ProducerListen,
		Certificate:  m.cert, Pin: m.pin,
		// quictransport's defaults for this segment size.
		StreamReceiveWindow: quictransport.StreamReceiveWindowFor(segmentSize),
		UDPBufferSize:       quictransport.DefaultUDPBufferSize,
	}
	if h.Client != nil {
		o.ClientListenPacket, o.ClientAddr = h.Client.ListenPacket, h.Client.ConsumerListen
	}
	return o
}

// factory returns the transport factory for an in-process bench node.
// mem transports share net (one network per run).
func factory(name string, h Hooks, ts transportSettings, m *tlsMaterial, mem *memtransport.Network) exchange.TransportFactory {
	switch name {
	case tTCP:
		return tcptransport.New(tcpConfig(h, ts))
	case tQUIC:
		c := quictransport.Config{TLS: m.options(), ListenPacket: h.ListenPacket}
		applyQUICSettings(&c, ts)
		return quictransport.New(c)
	case tMem:
		return mem.Factory()
	}
	return nil
}

// processFactory returns the factory for serve/consume. It warns once on
// stderr when the TLS certificate is derived from the job name.
func processFactory(o *options, h Hooks, handshake time.Duration, stderr io.Writer) (exchange.TransportFactory, error) {
	name := o.transports.items[0]
	ts := o.transportSettings()
	if name == tTCP && !o.tcpWantsTLS() {
		c := tcpConfig(h, ts)
		c.ConnectTimeout = handshake
		return tcptransport.New(c), nil // plain text: trusted networks only
	}
	m, defaultSecret, err := crossProcessTLS(o)
	if err != nil {
		return nil, err
	}
	if defaultSecret {
		fmt.Fprintf(stderr, "exchange %s: WARNING: the TLS certificate is derived from the job name %q (no -secret): anyone who knows the job name can connect; pass -secret, or -tls-cert, -tls-key and -tls-ca\n", o.cmd, o.job)
	}
	if name == tTCP {
		c := tcpConfig(h, ts)
		c.ConnectTimeout = handshake
		c.TLS = m.options()
		return tcptransport.New(c), nil
	}
	c := quictransport.Config{TLS: m.options(), ListenPacket: h.ListenPacket}
	c.IdleTimeout = o.idleTimeout
	c.KeepAlivePeriod = max(o.idleTimeout/3, time.Millisecond)
	c.HandshakeTimeout = handshake
	applyQUICSettings(&c, ts)
	return quictransport.New(c), nil
}

// benchTLS returns the in-process TLS material when a QUIC transport is
// among those to run, nil otherwise.
func (o *options) benchTLS() (*tlsMaterial, error) {
	for _, name := range o.transports.items {
		if name == tQUIC || name == tRawQUIC {
			return inProcessTLS()
		}
	}
	return nil, nil
}

// firstContact is closed when the first peer reaches a serve node: the
// first accepted TCP connection, or the first UDP datagram received by
// QUIC. serve starts emitting (and its clock) then, so a consumer that
// comes late neither finds buffers full of records stamped long ago nor
// makes the wait count as the exchange's time.
type firstContact struct {
	once sync.Once
	ch   chan struct{}
}

func newFirstContact() *firstContact { return &firstContact{ch: make(chan struct{})} }

func (f *firstContact) signal() { f.once.Do(func() { close(f.ch) }) }

// Done is closed at the first contact.
func (f *firstContact) Done() <-chan struct{} { return f.ch }

// withFirstContact returns h with its listening sockets wrapped to signal
// f. The sockets keep their concrete capabilities: the TCP listener
// returns the accepted *net.TCPConn itself, and a *net.UDPConn keeps every
// method quic-go uses for its fast paths (GSO, ECN, recvmmsg through
// ReadBatch).
func (h Hooks) withFirstContact(f *firstContact) Hooks {
	listen := h.Listen
	if listen == nil {
		lc := net.ListenConfig{KeepAlive: -1} // the transport sets it per connection
		listen = func(network, addr string) (net.Listener, error) {
			return lc.Listen(context.Background(), network, addr)
		}
	}
	h.Listen = func(network, addr string) (net.Listener, error) {
		ln, err := listen(network, addr)
		if err != nil {
			return nil, err
		}
		return &contactListener{Listener: ln, f: f}, nil
	}
	listenPacket := h.ListenPacket
	if listenPacket == nil {
		listenPacket = net.ListenPacket
	}
	h.ListenPacket = func(network, addr string) (net.PacketConn, error) {
		pc, err := listenPacket(network, addr)
		if err != nil {
			return nil, err
		}
		if u, ok := pc.(*net.UDPConn); ok {
			return &contactUDPConn{UDPConn: u, batch: ipv4.NewPacketConn(u), f: f}, nil
		}
		return &contactPacketConn{PacketConn: pc, f: f}, nil
	}
	return h
}

type contactListener struct {
	net.Listener
	f *firstContact
}

func (l *contactListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.f.signal()
	}
	return c, err
}

// contactUDPConn is a *net.UDPConn that signals its first datagram.
type contactUDPConn struct {
	*net.UDPConn
	batch *ipv4.PacketConn
	f     *firstContact
}

// ReadBatch is what quic-go reads with on Linux (recvmmsg).
func (c *contactUDPConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	n, err := c.batch.ReadBatch(ms, flags)
	if n > 0 {
		c.f.signal()
	}
	return n, err
}

func (c *contactUDPConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, addr, err = c.UDPConn.ReadMsgUDP(b, oob)
	if err == nil {
		c.f.signal()
	}
	return n, oobn, flags, addr, err
}

func (c *contactUDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.UDPConn.ReadFrom(b)
	if err == nil {
		c.f.signal()
	}
	return n, addr, err
}

type contactPacketConn struct {
	net.PacketConn
	f *firstContact
}

func (c *contactPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.f.signal()
	}
	return n, addr, err
}
