package cli

import (
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/qexchange/qexchange/bench/raw"
	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
	"github.com/qexchange/qexchange/exchange/wire"
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

// tlsMaterial is what both QUIC nodes present and accept.
type tlsMaterial struct {
	cert tls.Certificate
	pin  [32]byte
	// files instead of cert/pin
	certFile, keyFile, caFile string
}

// inProcessTLS is an ephemeral self-signed certificate both in-process
// nodes present and pin.
func inProcessTLS() (*tlsMaterial, error) {
	cert, pin, err := quictransport.SelfSigned("localhost", "127.0.0.1", "::1")
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return &tlsMaterial{cert: cert, pin: pin}, nil
}

// crossProcessTLS: files when given, else a certificate derived from the
// shared secret (default: from the job name).
func crossProcessTLS(o *options) (*tlsMaterial, error) {
	if o.tlsCert != "" {
		return &tlsMaterial{certFile: o.tlsCert, keyFile: o.tlsKey, caFile: o.tlsCA}, nil
	}
	secret := o.secret
	if secret == "" {
		secret = secretLabel + o.job
	}
	cert, pin, err := quictransport.DeriveSelfSigned(secret)
	if err != nil {
		return nil, err
	}
	return &tlsMaterial{cert: cert, pin: pin}, nil
}

func (m *tlsMaterial) quicConfig() quictransport.Config {
	if m.certFile != "" {
		return quictransport.Config{CertFile: m.certFile, KeyFile: m.keyFile, CAFile: m.caFile}
	}
	c := m.cert
	return quictransport.Config{Certificate: &c, PinnedSHA256: [][32]byte{m.pin}, ServerName: "localhost"}
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
	// LEAD: enable once quictransport.Config has these fields (helper
	// proto); until then QUIC runs on one connection and writes no qlog,
	// although both flags are validated and recorded in the JSON.
	// c.ConnectionsPerNode, c.QlogDir = ts.connections, ts.qlogDir
	_ = c
	_ = ts
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
		StreamReceiveWindow: max(quictransport.DefaultStreamReceiveWindow, 64*uint64(wire.MaxFrameSizeFor(segmentSize))),
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
		c := m.quicConfig()
		c.ListenPacket = h.ListenPacket
		applyQUICSettings(&c, ts)
		return quictransport.New(c)
	case tMem:
		return mem.Factory()
	}
	return nil
}

// processFactory returns the factory for serve/consume.
func processFactory(o *options, h Hooks, handshake time.Duration) (exchange.TransportFactory, error) {
	name := o.transports.items[0]
	ts := o.transportSettings()
	if name == tTCP {
		c := tcpConfig(h, ts)
		c.ConnectTimeout = handshake
		return tcptransport.New(c), nil
	}
	m, err := crossProcessTLS(o)
	if err != nil {
		return nil, err
	}
	c := m.quicConfig()
	c.ListenPacket = h.ListenPacket
	c.IdleTimeout = o.idleTimeout
	c.KeepAlivePeriod = max(o.idleTimeout/3, time.Millisecond)
	c.HandshakeTimeout = handshake
	applyQUICSettings(&c, ts)
	if m.certFile == "" {
		c.ServerName = "qexchange" // the derived certificate's name (pinned anyway)
	}
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
