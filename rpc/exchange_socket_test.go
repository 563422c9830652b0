package rpc

import (
	"context"
	"crypto/tls"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
)

// TestControlPlaneSharesTheExchangesSocket wires rpc into the real QUIC
// exchange the way a node does: the exchange's transport hands rpc the
// connections that negotiate rpc.ALPN, and rpc dials over the same UDP
// socket. One address per node carries both a partition's records and a
// call, told apart by ALPN, verified by the exchange's TLS material.
func TestControlPlaneSharesTheExchangesSocket(t *testing.T) {
	t.Cleanup(transporttest.CheckGoroutines(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type node struct {
		env *exchange.Environment
		svc *Service
	}
	newNode := func() node {
		cfg := testConfig(t, QUIC)
		cfg.NoListen = true
		var tr atomic.Pointer[quictransport.Transport]
		cfg.DialQUIC = func(ctx context.Context, addr string, tlsConf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			return tr.Load().DialQUIC(ctx, addr, tlsConf, qc)
		}
		svc, err := NewService(cfg)
		if err != nil {
			t.Fatal(err)
		}
		env, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20,
			Transport: quictransport.New(quictransport.Config{
				TLS:            tlsconf.Options{Certificate: cfg.TLS.Certificate, PinnedSHA256: cfg.TLS.PinnedSHA256},
				ExtraProtocols: map[string]func(*quic.Conn){ALPN: func(c *quic.Conn) { _ = svc.ServeQUICConn(c) }},
			})})
		if err != nil {
			t.Fatal(err)
		}
		tr.Store(env.Transport().(*quictransport.Transport))
		t.Cleanup(func() {
			svc.Close()
			env.Close()
			transporttest.CheckPools(t, env)
		})
		return node{env, svc}
	}
	a, b := newNode(), newNode()

	ep, err := a.svc.NewEndpoint(EndpointConfig{ID: "echo", Gateway: "EchoGateway"})
	if err != nil {
		t.Fatal(err)
	}
	if err := Register(ep, "echo", func(_ context.Context, s string) (string, error) { return s + "!", nil }); err != nil {
		t.Fatal(err)
	}
	if err := ep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	g, err := b.svc.Connect(ctx, a.env.Addr(), "echo", "EchoGateway")
	if err != nil {
		t.Fatalf("rpc over the exchange's socket: %v", err)
	}
	if got, err := Call[string, string](ctx, g, "echo", "hi"); err != nil || got != "hi!" {
		t.Fatalf("call: %q, %v", got, err)
	}

	part, err := a.env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: exchange.FlushEveryRecord})
	if err != nil {
		t.Fatal(err)
	}
	gate, err := b.env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: part.ID(), Addr: a.env.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	if err := part.EmitTo(ctx, 0, []byte("record")); err != nil {
		t.Fatal(err)
	}
	if e, err := gate.Next(ctx); err != nil || string(e.Record) != "record" {
		t.Fatalf("record over the same socket: %q, %v", e.Record, err)
	}
	// And rpc still works with the data connection open beside it.
	if got, err := Call[string, string](ctx, g, "echo", "again"); err != nil || got != "again!" {
		t.Fatalf("second call: %q, %v", got, err)
	}
}
