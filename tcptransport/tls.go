package tcptransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/wire"
)

// errRequiresTLS answers a plain-text client of a node that requires TLS.
var errRequiresTLS = errors.New("tcptransport: this node requires TLS (configure the same TLS material on the consumer)")

// serverTLS runs the server's TLS handshake of c, before any frame
// (docs/architecture.md, "Failure policy": a refused handshake fails the
// connection). A refusal is logged with the peer and the reason.
func (c *serverConn) serverTLS() error {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return nil
	}
	t := c.t
	_ = c.nc.SetDeadline(time.Now().Add(t.cfg.ConnectTimeout))
	err := tc.HandshakeContext(t.ctx)
	if err == nil {
		return nil
	}
	if t.isClosed() {
		return err
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) && rhe.Conn != nil {
		// A plain-text client: tell it why, in its own protocol.
		t.writeFatal(rhe.Conn, wire.CodeProtocol, errRequiresTLS)
	}
	t.log.Warn().Err(err).Str("peer", c.peer).Msg("TLS handshake refused; closing connection")
	return &exchange.AuthError{Peer: c.peer, Err: err}
}

// clientTLS runs the client's TLS handshake on nc when TLS is on.
func (c *clientConn) clientTLS(ctx context.Context, nc net.Conn) (net.Conn, error) {
	t := c.t
	if t.tls == nil {
		return nc, nil
	}
	tc := tls.Client(nc, t.tls.ClientConfig(tlsconf.HostOf(c.addr), ALPN))
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ConnectTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		if t.ctx.Err() != nil {
			return nil, errTransportClosed
		}
		if tlsconf.IsHandshakeFailure(err) {
			return nil, &exchange.AuthError{Peer: c.addr, Err: err}
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// batchConn is the socket under a server's tls.Conn. While the writer
// gathers a batch (begin ... flush), the TLS records of the batch are
// collected and written with one system call, as the plain-text writer's
// writev does; other writes (handshake, alerts) go straight through.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      []byte
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		b.buf = append(b.buf, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// flush writes the collected records.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}
