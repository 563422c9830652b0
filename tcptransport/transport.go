package tcptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/wire"
)

// Transport is the TCP exchange.Transport of one node. New's factory
// returns it as an exchange.Transport; assert to *Transport for Stats.
type Transport struct {
	cfg        Config
	ports      portRange
	listenAddr string
	log        zerolog.Logger
	wopts      wire.Options
	maxFrame   int
	tls        *tlsconf.Setup // nil: plain text

	ctx    context.Context // cancelled by Close: aborts dials
	cancel context.CancelFunc

	node  *chanproto.Node[*serverConn] // listener, served connections, goroutines
	peers *chanproto.Peers[*clientConn]
	admit *chanproto.Admission // MaxConnections, MaxConnectionsPerAddress

	stats counters
}

var _ exchange.Transport = (*Transport)(nil)

func newTransport(cfg Config, o exchange.TransportOptions) (*Transport, error) {
	cfg = cfg.withDefaults()
	pr, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if o.SegmentSize <= 0 {
		return nil, configErr("SegmentSize", o.SegmentSize, "must be > 0")
	}
	addr := o.ListenAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ts *tlsconf.Setup
	if cfg.TLS.Enabled() {
		if ts, err = tlsconf.New("tcptransport", cfg.TLS); err != nil {
			return nil, err
		}
	}
	maxFrame := wire.MaxFrameSizeFor(o.SegmentSize)
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg: cfg, ports: pr, listenAddr: addr,
		log:      o.Logger.With().Str("transport", Name).Logger(),
		wopts:    wire.Options{StreamMode: false, MaxFrameSize: maxFrame},
		maxFrame: maxFrame,
		tls:      ts,
		ctx:      ctx, cancel: cancel,
		node: chanproto.NewNode[*serverConn]("tcptransport"),
	}
	t.admit = chanproto.NewAdmission(cfg.MaxConnections, cfg.MaxConnectionsPerAddress, t.log)
	t.peers = chanproto.NewPeers(cfg.ConnectionsPerNode, func(addr string) *clientConn { return newClientConn(t, addr) })
	return t, nil
}

// Name implements exchange.Transport.
func (t *Transport) Name() string { return Name }

// Addr implements exchange.Transport: the listening address.
func (t *Transport) Addr() string { return t.node.Addr() }

// Listen implements exchange.Transport.
func (t *Transport) Listen(ctx context.Context, provider exchange.ViewProvider) error {
	if provider == nil {
		return configErr("provider", nil, "Listen needs a ViewProvider")
	}
	if cc := t.cfg.CongestionControl; cc != "" {
		if err := checkCongestion(cc); err != nil {
			return err
		}
	}
	if err := t.node.CanListen(); err != nil {
		return err
	}
	ln, err := t.listen(ctx, t.listenAddr)
	if err != nil {
		return err
	}
	if err := t.node.Listening(ln, ln.Addr().String(), provider); err != nil {
		return err
	}
	t.log.Debug().Str("addr", ln.Addr().String()).Msg("listening")
	t.node.Go(func() { t.acceptLoop(ln, provider) })
	return nil
}

func (t *Transport) isClosed() bool { return t.node.IsClosed() }

func (t *Transport) acceptLoop(ln net.Listener, provider exchange.ViewProvider) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if t.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and retry
			// (as net/http does) rather than give up serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
			select {
			case <-time.After(delay):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		peer := nc.RemoteAddr().String()
		if !t.admit.Admit(peer) {
			nc.Close()
			continue
		}
		if err := t.tune(nc); err != nil {
			t.log.Warn().Err(err).Str("peer", peer).Msg("socket options failed; closing connection")
			t.admit.Leave(peer)
			nc.Close()
			continue
		}
		if t.tls != nil {
			// The handshake runs on the connection's goroutine (serve).
			nc = tls.Server(&batchConn{Conn: nc}, t.tls.ServerConfig(ALPN))
		}
		c := newServerConn(t, nc, provider)
		if !t.node.Serve(c, c.serve) {
			t.admit.Leave(peer)
			nc.Close()
			return
		}
		t.stats.accepted.Add(1)
	}
}

// OpenChannel implements exchange.Transport. It dials (or shares) the
// connection to addr, registers h under req.Receiver and queues the
// PartitionRequest. Dial failures are *exchange.ConnectionError.
func (t *Transport) OpenChannel(ctx context.Context, addr string, req exchange.ChannelRequest, h exchange.ChannelHandler) (exchange.ChannelLink, error) {
	if req.InitialCredit < 0 || req.Subpartition < 0 {
		return nil, configErr("ChannelRequest", fmt.Sprintf("%+v", req), "negative credit or subpartition")
	}
	id := wire.ID(req.Receiver)
	c, err := t.peers.Acquire(ctx, addr, id)
	if err != nil {
		return nil, err
	}
	ch := &clientChannel{Channel: chanproto.NewChannel(h, req, addr, c.q, t.wopts), c: c}
	ch.SetPeerMaxFrame(c.peerMax)
	c.mu.Lock()
	_, dup := c.chans[id]
	if !dup {
		c.chans[id] = ch
		c.recent.remove(id)
	}
	c.mu.Unlock()
	if dup {
		t.peers.Release(c)
		return nil, fmt.Errorf("%w: tcptransport: receiver %s is already open on the connection to %s", exchange.ErrAlreadyConsumed, id, addr)
	}
	if err := c.q.Request(ch.Channel, req.Subpartition, req.InitialCredit); err != nil {
		ch.MarkClosed()
		c.forget(ch)
		t.peers.Release(c)
		return nil, err
	}
	return ch, nil
}

// Close implements exchange.Transport: it stops listening, closes every
// connection (failing their channels with an error wrapping
// exchange.ErrClosed) and waits for every goroutine of the transport.
func (t *Transport) Close() error {
	served, first := t.node.Close()
	if !first {
		return nil
	}
	t.cancel() // aborts dials
	for _, c := range t.peers.Close() {
		c.shutdown()
	}
	for _, c := range served {
		c.nc.Close()
	}
	t.node.Wait()
	return nil
}

// errTransportClosed is the cause channels fail with when their transport
// closes.
var errTransportClosed = fmt.Errorf("%w: tcptransport: transport closed", exchange.ErrClosed)

// Stats are cumulative counters of one transport, for benchmarks.
type Stats struct {
	ConnectionsDialed   int64 // client connections established
	ConnectionsAccepted int64 // server connections accepted
	ConnectionsRefused  int64 // server connections closed at once: MaxConnections or MaxConnectionsPerAddress
	Writes              int64 // write calls of the server's writers (each one writev of a batch)
	BytesWritten        int64 // bytes written by the server's writers
	BuffersSent         int64 // BufferResponses written
	BuffersReceived     int64 // BufferResponses received by the client side
	PayloadBytesRecv    int64 // payload bytes received by the client side
	ClientWrites        int64 // write calls of the clients' writers (AddCredit and other control messages)
}

type counters struct {
	dialed, accepted                   atomic.Int64
	writes, bytesWritten, buffersSent  atomic.Int64
	buffersReceived, payloadBytesRecvd atomic.Int64
	clientWrites                       atomic.Int64
}

// Stats returns the transport's counters.
func (t *Transport) Stats() Stats {
	s := &t.stats
	return Stats{
		ConnectionsDialed: s.dialed.Load(), ConnectionsAccepted: s.accepted.Load(), ConnectionsRefused: t.admit.Refused(),
		Writes: s.writes.Load(), BytesWritten: s.bytesWritten.Load(), BuffersSent: s.buffersSent.Load(),
		BuffersReceived: s.buffersReceived.Load(), PayloadBytesRecv: s.payloadBytesRecvd.Load(),
		ClientWrites: s.clientWrites.Load(),
	}
}

// peerClosed describes a clean end of stream.
var errPeerClosed = errors.New("connection closed by peer")

// causeOf turns a read error into the cause a channel fails with.
func causeOf(err error) error {
	if errors.Is(err, io.EOF) {
		return errPeerClosed
	}
	return err
}

// isProtocolErr reports whether err is bad input (rather than I/O).
func isProtocolErr(err error) bool {
	return errors.Is(err, wire.ErrProtocol) || errors.Is(err, exchange.ErrProtocol)
}

// recentSet is a bounded set of recently released receiverIds: frames for
// them are a normal race and are dropped silently, while ids never seen
// are a protocol error. The oldest ids fall out first.
type recentSet struct {
	m    map[wire.ID]uint64
	ring []recentEntry
	next int
	gen  uint64
}

type recentEntry struct {
	id  wire.ID
	gen uint64
}

const recentCap = 8192

func (s *recentSet) add(id wire.ID) {
	if s.m == nil {
		s.m = make(map[wire.ID]uint64)
	}
	s.gen++
	if len(s.ring) < recentCap {
		s.ring = append(s.ring, recentEntry{id, s.gen})
	} else {
		old := s.ring[s.next]
		if g, ok := s.m[old.id]; ok && g == old.gen {
			delete(s.m, old.id)
		}
		s.ring[s.next] = recentEntry{id, s.gen}
		s.next = (s.next + 1) % recentCap
	}
	s.m[id] = s.gen
}

func (s *recentSet) has(id wire.ID) bool {
	_, ok := s.m[id]
	return ok
}

func (s *recentSet) remove(id wire.ID) { delete(s.m, id) }
