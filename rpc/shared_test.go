package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange/transporttest"
)

// sharedNode is a node whose one UDP socket carries a data protocol
// ("data/1", a stand-in for the exchange) and the control plane, told
// apart by ALPN: the layout a node gets when quictransport hands rpc the
// connections that negotiated rpc.ALPN.
type sharedNode struct {
	svc  *Service
	tr   *quic.Transport
	ln   *quic.Listener
	addr string
	wg   sync.WaitGroup
}

const dataALPN = "data/1"

func newSharedNode(t *testing.T) *sharedNode {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &sharedNode{tr: &quic.Transport{Conn: pc}, addr: pc.LocalAddr().String()}
	cfg := testConfig(t, QUIC)
	cfg.NoListen = true
	cfg.DialQUIC = func(ctx context.Context, addr string, tlsConf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		return n.tr.Dial(ctx, ua, tlsConf, qc)
	}
	if n.svc, err = NewService(cfg); err != nil {
		t.Fatal(err)
	}
	tlsConf := n.svc.ServerTLSConfig()
	tlsConf.NextProtos = []string{dataALPN, ALPN}
	if n.ln, err = n.tr.Listen(tlsConf, n.svc.QUICConfig(true)); err != nil {
		t.Fatal(err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := n.ln.Accept(context.Background())
			if err != nil {
				return
			}
			if c.ConnectionState().TLS.NegotiatedProtocol == ALPN {
				if err := n.svc.ServeQUICConn(c); err != nil && !errors.Is(err, ErrClosed) {
					t.Error(err)
				}
				continue
			}
			n.wg.Add(1)
			go func() { // the data protocol: echo one stream
				defer n.wg.Done()
				defer c.CloseWithError(0, "")
				s, err := c.AcceptStream(context.Background())
				if err != nil {
					return
				}
				_, _ = io.Copy(s, s)
				s.Close()
				<-c.Context().Done() // the client closes once it has read the echo
			}()
		}
	}()
	t.Cleanup(func() {
		if err := n.svc.Close(); err != nil {
			t.Error(err)
		}
		n.ln.Close()
		n.wg.Wait()
		n.tr.Close()
		pc.Close()
	})
	return n
}

// TestSharedSocket: the control plane and another protocol share each
// node's UDP socket, in both directions.
func TestSharedSocket(t *testing.T) {
	t.Cleanup(transporttest.CheckGoroutines(t)) // runs after the nodes' cleanups
	a, b := newSharedNode(t), newSharedNode(t)
	ctx := ctxT(t)
	startEndpoint(t, b.svc, EndpointConfig{ID: "echo"}, func(e *Endpoint) {
		_ = Register(e, "echo", func(_ context.Context, s string) (string, error) { return s, nil })
	})
	g, err := a.svc.Connect(ctx, b.addr, "echo", "echo")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Call[string, string](ctx, g, "echo", "over the shared socket"); err != nil || s != "over the shared socket" {
		t.Fatalf("rpc: %q, %v", s, err)
	}
	// The data protocol on the same socket.
	ua, _ := net.ResolveUDPAddr("udp", b.addr)
	clientTLS := a.svc.ClientTLSConfig("127.0.0.1")
	clientTLS.NextProtos = []string{dataALPN}
	clientTLS.VerifyConnection = nil // the ALPN check; the peer is still verified by pin
	c, err := a.tr.Dial(ctx, ua, clientTLS, a.svc.QUICConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	s, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "data" {
		t.Fatalf("data protocol: %q, %v", got, err)
	}
}
