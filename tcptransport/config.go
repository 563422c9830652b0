package tcptransport

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
)

// Name is the name the transport registers under ("tcp").
const Name = "tcp"

// Defaults for the zero values of Config.
const (
	DefaultConnectionsPerNode = 1
	DefaultConnectTimeout     = 10 * time.Second
	// DefaultKeepAlive and DefaultDeadPeerTimeout detect a silent peer
	// (a network partition, a host that vanished) within 30 s on both
	// sides of a connection (Config.DeadPeerTimeout).
	DefaultKeepAlive       = 5 * time.Second
	DefaultDeadPeerTimeout = 30 * time.Second
	DefaultWriteBatchBytes = 256 << 10
	// Bounds of a server (docs/architecture.md, "Failure policy"): sized
	// for a stock Linux host, whose Go processes may open some thousands
	// of descriptors.
	DefaultMaxConnections           = 1024
	DefaultMaxConnectionsPerAddress = 128
	DefaultIdleConnectionTimeout    = time.Minute
	DefaultMaxControlBytes          = 1 << 20
)

// Config configures the TCP transport. Every zero value means the
// documented default; TLS is off unless TLS material is set.
type Config struct {
	// PortRange, "lo-hi", makes Listen take the first free port of the
	// range on the host of TransportOptions.ListenAddr (whose port is then
	// ignored). Empty: listen on ListenAddr as given.
	PortRange string
	// ConnectionsPerNode is the number of connections to one remote node
	// (default 1). With N > 1 the channels to a node are spread evenly
	// over N connections (each new channel on the least used).
	ConnectionsPerNode int
	// ConnectTimeout bounds dialing plus the Hello handshake, on both
	// sides (default 10 s).
	ConnectTimeout time.Duration
	// KeepAlive is the TCP keepalive period: the idle time before the
	// first probe and between probes (default 5 s); negative disables
	// keepalive.
	KeepAlive time.Duration
	// DeadPeerTimeout bounds how long a connection survives a peer that
	// answers nothing (default 30 s): on Linux it is TCP_USER_TIMEOUT,
	// which ends a connection whose sent data stays unacknowledged that
	// long, and with keepalive it also ends an idle connection whose
	// probes go unanswered that long (checked at each probe, so rounded
	// up to a multiple of KeepAlive); elsewhere the probe count is set to
	// cover it. Both ends of a connection apply it, so a silent network
	// partition fails the producer's and the consumer's side within it.
	// Negative: the kernel's defaults (minutes to hours). It must not be
	// below KeepAlive.
	DeadPeerTimeout time.Duration
	// DisableNoDelay turns Nagle's algorithm back on (TCP_NODELAY is set
	// by default: the transport coalesces writes itself).
	DisableNoDelay bool
	// SendBuffer and ReceiveBuffer set SO_SNDBUF and SO_RCVBUF (0: the
	// kernel's default and autotuning).
	SendBuffer, ReceiveBuffer int
	// CongestionControl sets TCP_CONGESTION ("reno", "cubic", "bbr", ...)
	// on every socket; "" keeps the kernel's default. An algorithm the
	// kernel does not offer is an error at Listen and at dial.
	CongestionControl string
	// Dial creates client sockets (default: a net.Dialer). The link
	// emulator uses it to dial from inside a network namespace.
	Dial DialFunc
	// Listen creates the listening socket (default: a net.ListenConfig).
	Listen ListenFunc
	// WriteBatchBytes bounds how many bytes the server's writer gathers
	// into one write system call (default 256 KiB). At least one frame is
	// always written.
	WriteBatchBytes int

	// MaxConnections bounds the connections a node serves at once
	// (default 1024) and MaxConnectionsPerAddress those from one remote IP
	// address (default 128); a connection above either is closed as soon
	// as it is accepted, so a flood of connections leaves descriptors for
	// healthy consumers.
	MaxConnections, MaxConnectionsPerAddress int
	// IdleConnectionTimeout closes a served connection that holds no
	// channel for this long (default 1 min; negative: never), so that
	// connections that only sent a Hello do not pile up. It must exceed
	// the consumers' partition request backoff.
	IdleConnectionTimeout time.Duration
	// MaxControlBytes bounds the control frames (refusals of partition
	// requests) queued on a served connection whose peer does not read
	// them (default 1 MiB); reaching it closes that connection.
	MaxControlBytes int

	// TLS turns on mutual TLS 1.3 when it holds any material; without
	// it the transport runs in plain text, for trusted networks only
	// (anyone who can reach the port can read a partition). With it,
	// every connection starts with a TLS handshake (ALPN
	// "qexchange-tcp/1") before any frame, both sides present a
	// certificate and both verify the peer's, as quictransport does (see
	// tlsconf.Options). Material with no certificate or no way to verify
	// fails in New's factory: verification is never skipped.
	TLS tlsconf.Options
}

// ALPN is the TLS application protocol of the exchange over TCP; it
// differs from QUIC's, whose frames omit the receiverId.
const ALPN = "qexchange-tcp/1"

// DialFunc and ListenFunc let the transport's sockets be created
// elsewhere (the link emulator creates them inside network namespaces).
type (
	DialFunc   func(ctx context.Context, network, addr string) (net.Conn, error)
	ListenFunc func(network, addr string) (net.Listener, error)
)

// New returns the factory of TCP transports configured by cfg. The
// factory uses TransportOptions.ListenAddr, SegmentSize (the maximum frame
// size is wire.MaxFrameSizeFor(SegmentSize)) and Logger. The transports it
// returns are *Transport.
func New(cfg Config) exchange.TransportFactory {
	return func(o exchange.TransportOptions) (exchange.Transport, error) {
		return newTransport(cfg, o)
	}
}

func configErr(field string, value any, reason string) error {
	return &exchange.ConfigError{Field: "tcptransport." + field, Value: value, Reason: reason}
}

// MaxConnectionsPerNode bounds Config.ConnectionsPerNode.
const MaxConnectionsPerNode = 64

// withDefaults fills the zero values of cfg with the documented defaults.
func (cfg Config) withDefaults() Config {
	cfg.ConnectionsPerNode = cmp.Or(cfg.ConnectionsPerNode, DefaultConnectionsPerNode)
	cfg.ConnectTimeout = cmp.Or(cfg.ConnectTimeout, DefaultConnectTimeout)
	cfg.KeepAlive = cmp.Or(cfg.KeepAlive, DefaultKeepAlive)
	cfg.DeadPeerTimeout = cmp.Or(cfg.DeadPeerTimeout, DefaultDeadPeerTimeout)
	cfg.WriteBatchBytes = cmp.Or(cfg.WriteBatchBytes, DefaultWriteBatchBytes)
	cfg.MaxConnections = cmp.Or(cfg.MaxConnections, DefaultMaxConnections)
	cfg.MaxConnectionsPerAddress = cmp.Or(cfg.MaxConnectionsPerAddress, DefaultMaxConnectionsPerAddress)
	cfg.IdleConnectionTimeout = cmp.Or(cfg.IdleConnectionTimeout, DefaultIdleConnectionTimeout)
	cfg.MaxControlBytes = cmp.Or(cfg.MaxControlBytes, DefaultMaxControlBytes)
	return cfg
}

// validate checks cfg after withDefaults (a negative KeepAlive,
// DeadPeerTimeout or IdleConnectionTimeout is valid: it disables them)
// and parses its port range.
func (cfg Config) validate() (portRange, error) {
	switch {
	case cfg.ConnectionsPerNode < 1 || cfg.ConnectionsPerNode > MaxConnectionsPerNode:
		return portRange{}, configErr("ConnectionsPerNode", cfg.ConnectionsPerNode, "must be in 1..64")
	case cfg.ConnectTimeout < 0:
		return portRange{}, configErr("ConnectTimeout", cfg.ConnectTimeout, "must be >= 0")
	case cfg.DeadPeerTimeout > 0 && cfg.KeepAlive > 0 && cfg.DeadPeerTimeout < cfg.KeepAlive:
		return portRange{}, configErr("DeadPeerTimeout", cfg.DeadPeerTimeout, fmt.Sprintf("must be >= KeepAlive (%v)", cfg.KeepAlive))
	case cfg.SendBuffer < 0:
		return portRange{}, configErr("SendBuffer", cfg.SendBuffer, "must be >= 0")
	case cfg.ReceiveBuffer < 0:
		return portRange{}, configErr("ReceiveBuffer", cfg.ReceiveBuffer, "must be >= 0")
	case cfg.WriteBatchBytes < 0:
		return portRange{}, configErr("WriteBatchBytes", cfg.WriteBatchBytes, "must be >= 0")
	case cfg.MaxConnections < 0:
		return portRange{}, configErr("MaxConnections", cfg.MaxConnections, "must be >= 0")
	case cfg.MaxConnectionsPerAddress < 0:
		return portRange{}, configErr("MaxConnectionsPerAddress", cfg.MaxConnectionsPerAddress, "must be >= 0")
	case cfg.MaxControlBytes < 0:
		return portRange{}, configErr("MaxControlBytes", cfg.MaxControlBytes, "must be >= 0")
	case cfg.PortRange == "":
		return portRange{}, nil
	}
	return parsePortRange(cfg.PortRange)
}

type portRange struct{ lo, hi int }

func parsePortRange(s string) (portRange, error) {
	los, his, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		his = los
	}
	lo, err1 := strconv.Atoi(strings.TrimSpace(los))
	hi, err2 := strconv.Atoi(strings.TrimSpace(his))
	if err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return portRange{}, configErr("PortRange", s, `want "lo-hi" with 1 <= lo <= hi <= 65535`)
	}
	return portRange{lo, hi}, nil
}

// listen opens the listening socket: on addr, or on the first free port of
// the configured range on addr's host.
func (t *Transport) listen(ctx context.Context, addr string) (net.Listener, error) {
	listenFn := t.cfg.Listen
	if listenFn == nil {
		lc := net.ListenConfig{KeepAlive: -1} // set per connection in tune
		listenFn = func(network, addr string) (net.Listener, error) { return lc.Listen(ctx, network, addr) }
	}
	if t.ports.lo == 0 {
		ln, err := listenFn("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("tcptransport: listen on %s: %w", addr, err)
		}
		return ln, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, configErr("ListenAddr", addr, err.Error())
	}
	var errs []error
	for p := t.ports.lo; p <= t.ports.hi; p++ {
		ln, err := listenFn("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
		if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES) {
			continue // taken: try the next port
		}
		errs = append(errs, err)
		if len(errs) > 3 {
			break
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("tcptransport: no port of range %d-%d free on %q: %w", t.ports.lo, t.ports.hi, host, errors.Join(errs...))
	}
	return nil, fmt.Errorf("tcptransport: no port of range %d-%d free on %q: all in use", t.ports.lo, t.ports.hi, host)
}

// dial opens a client socket to addr within the connect timeout.
func (t *Transport) dial(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	defer cancel()
	if t.cfg.Dial != nil {
		return t.cfg.Dial(ctx, "tcp", addr)
	}
	d := net.Dialer{KeepAlive: -1} // set in tune
	return d.DialContext(ctx, "tcp", addr)
}

// keepAliveConfig probes every KeepAlive from KeepAlive of silence on,
// enough probes to cover DeadPeerTimeout (with TCP_USER_TIMEOUT, Linux
// ends the connection at DeadPeerTimeout whatever the count).
func (t *Transport) keepAliveConfig() net.KeepAliveConfig {
	ka := net.KeepAliveConfig{Enable: true, Idle: t.cfg.KeepAlive, Interval: t.cfg.KeepAlive, Count: -1}
	if d := t.cfg.DeadPeerTimeout; d > 0 {
		ka.Count = max(1, int((d-t.cfg.KeepAlive+t.cfg.KeepAlive-1)/t.cfg.KeepAlive))
	}
	return ka
}

// tune applies the socket options to an accepted or dialed connection.
// Options a non-TCP connection (from a Dial/Listen hook) cannot take are
// skipped.
func (t *Transport) tune(nc net.Conn) error {
	type noDelayer interface{ SetNoDelay(bool) error }
	if c, ok := nc.(noDelayer); ok {
		if err := c.SetNoDelay(!t.cfg.DisableNoDelay); err != nil {
			return fmt.Errorf("TCP_NODELAY: %w", err)
		}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		if t.cfg.KeepAlive < 0 {
			if err := tc.SetKeepAlive(false); err != nil {
				return fmt.Errorf("SO_KEEPALIVE: %w", err)
			}
		} else if err := tc.SetKeepAliveConfig(t.keepAliveConfig()); err != nil {
			return fmt.Errorf("keepalive: %w", err)
		}
		if d := t.cfg.DeadPeerTimeout; d > 0 {
			if err := setUserTimeout(tc, d); err != nil {
				return fmt.Errorf("TCP_USER_TIMEOUT: %w", err)
			}
		}
		if n := t.cfg.SendBuffer; n > 0 {
			if err := tc.SetWriteBuffer(n); err != nil {
				return fmt.Errorf("SO_SNDBUF: %w", err)
			}
		}
		if n := t.cfg.ReceiveBuffer; n > 0 {
			if err := tc.SetReadBuffer(n); err != nil {
				return fmt.Errorf("SO_RCVBUF: %w", err)
			}
		}
	}
	if cc := t.cfg.CongestionControl; cc != "" {
		sc, ok := nc.(syscall.Conn)
		if !ok {
			return nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = setCongestion(int(fd), cc) }); err != nil {
			return err
		}
		return serr
	}
	return nil
}
