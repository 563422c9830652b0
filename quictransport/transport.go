package quictransport

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Stream error codes (RESET_STREAM / STOP_SENDING), as seen by the peer
// in a *quic.StreamError.
const (
	// StreamCodeCancelled: the consumer closed its channel
	// (ChannelLink.Close), or the producer stopped serving it because the
	// consumer went away.
	StreamCodeCancelled quic.StreamErrorCode = 0x5158_0001
	// StreamCodeProtocol: the stream carried bad input (a bad frame, a
	// wrong Hello, an invalid field, data without credit); only this
	// stream (channel) fails. An ErrorResponse describing it precedes the
	// reset where the direction still allows one.
	StreamCodeProtocol quic.StreamErrorCode = 0x5158_0002
	// StreamCodeRefused: the producer answered the partition request with
	// an ErrorResponse (partition not found, already consumed, ...).
	StreamCodeRefused quic.StreamErrorCode = 0x5158_0003
)

// Connection error codes (CONNECTION_CLOSE), as seen by the peer in a
// *quic.ApplicationError.
const (
	// ConnCodeUnused: the last channel on the connection was released.
	ConnCodeUnused quic.ApplicationErrorCode = 0
	// ConnCodeShutdown: the node closed its transport.
	ConnCodeShutdown quic.ApplicationErrorCode = 0x5158_0010
	// ConnCodeIdle: the served connection held no channel for
	// Config.IdleConnectionTimeout.
	ConnCodeIdle quic.ApplicationErrorCode = 0x5158_0011
	// ConnCodeTooMany: the node serves MaxConnections connections, or
	// MaxConnectionsPerAddress from the peer's address, already.
	ConnCodeTooMany quic.ApplicationErrorCode = 0x5158_0012
)

// quicGoBufferTarget is the socket buffer size below which quic-go warns
// (through the standard library's global logger).
const quicGoBufferTarget = 7 << 20

// New returns the factory of QUIC transports configured by cfg. The
// factory fails if cfg gives no certificate or no way to verify peers.
func New(cfg Config) exchange.TransportFactory {
	return func(o exchange.TransportOptions) (exchange.Transport, error) {
		return newTransport(cfg, o)
	}
}

// Transport is one node's QUIC transport: one UDP socket and one
// quic.Transport for listening and dialing, one connection per remote
// node, one bidirectional stream per input channel.
type Transport struct {
	cfg    Config
	log    zerolog.Logger
	tls    *tlsconf.Setup
	opts   wire.Options
	segSz  int
	pc     net.PacketConn
	tr     *quic.Transport
	ctx    context.Context
	cancel context.CancelFunc

	node  *chanproto.Node[*quic.Conn]   // listener, served connections, goroutines
	peers *chanproto.Peers[*clientConn] // client side
	admit *chanproto.Admission          // MaxConnections, MaxConnectionsPerAddress
}

var _ exchange.Transport = (*Transport)(nil)

func newTransport(cfg Config, o exchange.TransportOptions) (*Transport, error) {
	if o.SegmentSize <= 0 {
		o.SegmentSize = exchange.DefaultSegmentSize
	}
	cfg = cfg.withDefaults(o.SegmentSize)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ts, err := tlsconf.New("quictransport", cfg.TLS)
	if err != nil {
		return nil, err
	}
	addr := o.ListenAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	listen := cfg.ListenPacket
	if listen == nil {
		listen = net.ListenPacket
	}
	pc, err := listen("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quictransport: listening on %s: %w", addr, err)
	}
	t := &Transport{
		cfg: cfg, log: o.Logger.With().Str("transport", Name).Logger(), tls: ts,
		opts:  wire.Options{StreamMode: true, MaxFrameSize: wire.MaxFrameSizeFor(o.SegmentSize)},
		segSz: o.SegmentSize,
		pc:    pc,
		node:  chanproto.NewNode[*quic.Conn]("quictransport"),
	}
	t.peers = chanproto.NewPeers(cfg.ConnectionsPerNode, t.newClientConn)
	t.admit = chanproto.NewAdmission(cfg.MaxConnections, cfg.MaxConnectionsPerAddress, t.log)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.checkBuffers()
	var resetKey quic.StatelessResetKey
	_, _ = rand.Read(resetKey[:])
	t.tr = &quic.Transport{Conn: pc, StatelessResetKey: &resetKey}
	return t, nil
}

// checkBuffers raises the socket buffers and warns once, with the
// sysctl to run, when the kernel caps them.
func (t *Transport) checkBuffers() {
	rcv, snd := raiseBuffers(t.pc, t.cfg.UDPBufferSize)
	if !rcv.capped() && !snd.capped() {
		return
	}
	t.log.Warn().Int("want_bytes", t.cfg.UDPBufferSize).Int("receive_bytes", rcv.got).Int("send_bytes", snd.got).
		Str("fix", fmt.Sprintf(bufferSysctlHint, t.cfg.UDPBufferSize, t.cfg.UDPBufferSize)).
		Msg("UDP socket buffers capped by the kernel; QUIC throughput may suffer")
	if (rcv.got > 0 && rcv.got < quicGoBufferTarget) || (snd.got > 0 && snd.got < quicGoBufferTarget) {
		// quic-go would print the same warning through the standard
		// library's global logger; it has been reported above. An
		// explicit setting by the user wins.
		if _, set := os.LookupEnv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING"); !set {
			_ = os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
		}
	}
}

// Name implements exchange.Transport.
func (t *Transport) Name() string { return Name }

// Addr implements exchange.Transport.
func (t *Transport) Addr() string { return t.node.Addr() }

// Listen implements exchange.Transport.
func (t *Transport) Listen(_ context.Context, provider exchange.ViewProvider) error {
	if err := t.node.CanListen(); err != nil {
		return err
	}
	alpns := []string{ALPN}
	for p := range t.cfg.ExtraProtocols {
		alpns = append(alpns, p)
	}
	ln, err := t.tr.Listen(t.tls.ServerConfigLogging(func(peer string, err error) {
		t.log.Warn().Err(err).Str("peer", peer).Msg("TLS handshake refused")
	}, alpns...), t.quicConfig(true))
	if err != nil {
		return fmt.Errorf("quictransport: listen: %w", err)
	}
	if err := t.node.Listening(ln, t.pc.LocalAddr().String(), provider); err != nil {
		return err
	}
	t.node.Go(func() { t.acceptLoop(ln) })
	t.log.Debug().Str("addr", t.Addr()).Msg("listening")
	return nil
}

// goTracked runs f in a goroutine the transport's Close waits for; it
// returns false (and does not run f) once the transport is closed.
func (t *Transport) goTracked(f func()) bool { return t.node.GoUnlessClosed(f) }

func (t *Transport) isClosed() bool { return t.node.IsClosed() }

// Close implements exchange.Transport: it closes every connection with
// ConnCodeShutdown (so peers fail their channels at once), waits for the
// transport's goroutines and closes the socket.
func (t *Transport) Close() error {
	conns, first := t.node.Close()
	if !first {
		return nil
	}
	dialing := t.peers.Close()
	t.cancel()
	for _, cc := range dialing {
		if c := cc.waitConn(); c != nil {
			conns = append(conns, c)
		}
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.CloseWithError(ConnCodeShutdown, "node shutting down") })
	}
	wg.Wait()
	t.node.Wait()
	err := t.tr.Close()
	if cerr := t.pc.Close(); err == nil {
		err = cerr
	}
	return err
}

// acceptLoop accepts connections until the listener closes.
func (t *Transport) acceptLoop(ln *quic.Listener) {
	for {
		c, err := ln.Accept(t.ctx)
		if err != nil {
			return
		}
		peer := c.RemoteAddr().String()
		if !t.admit.Admit(peer) {
			c.CloseWithError(ConnCodeTooMany, "too many connections (MaxConnections, MaxConnectionsPerAddress)")
			continue
		}
		serve := t.serveConn
		if p := c.ConnectionState().TLS.NegotiatedProtocol; p != ALPN {
			serve = t.cfg.ExtraProtocols[p] // it owns the connection
		}
		if !t.node.Serve(c, func() { serve(c); t.admit.Leave(peer) }) {
			t.admit.Leave(peer)
			c.CloseWithError(ConnCodeShutdown, "node shutting down")
		}
	}
}

// serveConn accepts the streams (channels) of one incoming connection.
func (t *Transport) serveConn(c *quic.Conn) {
	peer := c.RemoteAddr().String()
	log := t.log.With().Str("peer", peer).Logger()
	log.Debug().Msg("connection accepted")
	w := &connWriter{t: t, sched: chanproto.NewScheduler(), done: make(chan struct{})}
	if d := t.cfg.IdleConnectionTimeout; d > 0 {
		w.idle = time.AfterFunc(d, func() {
			log.Info().Dur("idle_connection_timeout", d).Msg("closing a connection that holds no channel")
			c.CloseWithError(ConnCodeIdle, fmt.Sprintf("no channel for %v (IdleConnectionTimeout)", d))
		})
	}
	defer func() {
		if w.idle != nil {
			w.idle.Stop()
		}
		close(w.done)
		w.sched.Close()
	}()
	if !t.goTracked(w.loop) {
		return
	}
	// A slot per stream still in its handshake (MaxHandshakingStreams):
	// when they are all taken, the next stream waits to be accepted.
	handshaking := make(chan struct{}, t.cfg.MaxHandshakingStreams)
	for {
		select {
		case handshaking <- struct{}{}:
		case <-c.Context().Done():
			log.Debug().Err(context.Cause(c.Context())).Msg("connection ended")
			return
		case <-t.ctx.Done():
			return
		}
		str, err := c.AcceptStream(t.ctx)
		if err != nil {
			log.Debug().Err(err).Msg("connection ended")
			return
		}
		s := newServerStream(t, w, str, peer, log)
		s.handshook = sync.OnceFunc(func() { <-handshaking })
		if !t.goTracked(s.serve) {
			str.CancelRead(StreamCodeCancelled)
			str.CancelWrite(StreamCodeCancelled)
			return
		}
	}
}

// connError is the error a channel fails with when its connection (or
// stream) breaks: ErrClosed if this transport is closing, a
// *exchange.ConnectionError naming the peer otherwise.
func (t *Transport) connError(peer string, err error) error {
	if t.isClosed() {
		return fmt.Errorf("quictransport: connection to %s: %w", peer, exchange.ErrClosed)
	}
	var te *quic.TransportError
	if (errors.As(err, &te) && te.ErrorCode.IsCryptoError()) || tlsconf.IsHandshakeFailure(err) {
		// A refused TLS handshake (pin, CA, ALPN): permanent, not retried.
		return &exchange.AuthError{Peer: peer, Err: err}
	}
	return &exchange.ConnectionError{Peer: peer, Err: err}
}

// quicConfig is the configuration of one side's connections.
func (t *Transport) quicConfig(server bool) *quic.Config {
	var tracer func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace
	if t.cfg.QlogDir != "" {
		tracer = t.qlogTracer(t.cfg.QlogDir)
	}
	return t.cfg.quicConfig(server, tracer)
}

// DialProtocol dials a connection of another protocol to the node at
// addr over this node's UDP socket, with the exchange's TLS material and
// verification, negotiating alpn (one of the peer's
// Config.ExtraProtocols). The caller owns the connection and opens its
// streams; the peer cannot open streams on it.
func (t *Transport) DialProtocol(ctx context.Context, addr, alpn string) (*quic.Conn, error) {
	if alpn == "" || alpn == ALPN {
		return nil, configErr("DialProtocol alpn", alpn, "must be non-empty and not "+ALPN)
	}
	if t.isClosed() {
		return nil, exchange.ErrClosed
	}
	c, err := t.dial(ctx, addr, alpn)
	if err != nil {
		return nil, t.connError(addr, err)
	}
	return c, nil
}

// dial opens a connection to addr that negotiates alpn.
func (t *Transport) dial(ctx context.Context, addr, alpn string) (*quic.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("quictransport: bad address %q: %w", addr, err)
	}
	return t.DialQUIC(ctx, addr, t.tls.ClientConfig(host, alpn), t.quicConfig(false))
}

// DialQUIC dials addr over the node's UDP socket with the caller's TLS
// and QUIC configuration, for another protocol whose peers serve it
// through Config.ExtraProtocols (its signature is rpc.Config.DialQUIC's).
// The TLS configuration must offer that protocol's ALPN.
func (t *Transport) DialQUIC(ctx context.Context, addr string, tlsConf *tls.Config, quicConf *quic.Config) (*quic.Conn, error) {
	if t.isClosed() {
		return nil, exchange.ErrClosed
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return t.tr.Dial(ctx, ua, tlsConf, quicConf)
}

// gather lets the other channels of a burst become ready before a writer
// that was idle and serves several channels writes: the flusher readies
// every channel of a partition
// within microseconds (and partitions flush on the same ticks), and a
// writer that sent the first one at once would leave each in its own
// small packet, because quic-go packs a packet as soon as it is told that
// a stream has data.
func (t *Transport) gather() {
	if d := t.cfg.WriteGather; d > 0 {
		time.Sleep(d)
	}
}
