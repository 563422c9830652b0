package exchange_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// Addr never reports a wildcard, and what it reports is what another node
// dials to read from this one, on both network transports.
func TestAddrIsDialableForWildcardListeners(t *testing.T) {
	cert, pin, err := tlsconf.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	transports := map[string]func() exchange.TransportFactory{
		"tcp": func() exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) },
		"quic": func() exchange.TransportFactory {
			return quictransport.New(quictransport.Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}})
		},
	}
	for name, factory := range transports {
		for _, listen := range []string{":0", "0.0.0.0:0", "[::]:0"} {
			t.Run(name+"/"+listen, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				prod, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20, Transport: factory(), ListenAddr: listen})
				if err != nil {
					t.Fatal(err)
				}
				defer func() { prod.Close(); transporttest.CheckPools(t, prod) }()
				host, port, err := net.SplitHostPort(prod.Addr())
				if err != nil || port == "0" {
					t.Fatalf("Addr %q: not a dialable host:port", prod.Addr())
				}
				ip := net.ParseIP(host)
				if host == "" || ip == nil || ip.IsUnspecified() {
					t.Fatalf("Addr %q: a wildcard or unresolved host", prod.Addr())
				}
				if !isHostAddress(t, ip) {
					t.Fatalf("Addr %q: not an address of this host's interfaces", prod.Addr())
				}
				cons, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20, Transport: factory(), ListenAddr: listen})
				if err != nil {
					t.Fatal(err)
				}
				defer func() { cons.Close(); transporttest.CheckPools(t, cons) }()
				part, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: exchange.FlushEveryRecord})
				if err != nil {
					t.Fatal(err)
				}
				// Tests send traffic to loopback only: dial the advertised
				// port there (the host part was checked above).
				dial := net.JoinHostPort("127.0.0.1", port)
				gate, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: part.ID(), Addr: dial}}})
				if err != nil {
					t.Fatal(err)
				}
				defer gate.Close()
				if err := part.EmitTo(ctx, 0, []byte("hello")); err != nil {
					t.Fatal(err)
				}
				e, err := gate.Next(ctx)
				if err != nil || string(e.Record) != "hello" {
					t.Fatalf("read through %s (advertised %s): %q, %v", dial, prod.Addr(), e.Record, err)
				}
			})
		}
	}
}

func isHostAddress(t *testing.T, ip net.IP) bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func TestAdvertiseAddrIsReported(t *testing.T) {
	ctx := context.Background()
	env, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20, Transport: tcptransport.New(tcptransport.Config{}),
		ListenAddr: "0.0.0.0:0", AdvertiseAddr: "exchange-1.example:7000"})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if env.Addr() != "exchange-1.example:7000" {
		t.Fatalf("Addr %q, want the advertised address", env.Addr())
	}
	if _, err := exchange.NewEnvironment(ctx, exchange.Config{Transport: tcptransport.New(tcptransport.Config{}), AdvertiseAddr: "[::]:7000"}); err == nil {
		t.Fatal("a wildcard AdvertiseAddr was accepted")
	}
}
