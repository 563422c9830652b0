package chanproto_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// secureFactory returns a transport whose certificate is derived from
// secret and which pins only that certificate.
type secureFactory func(t *testing.T, secret string) exchange.TransportFactory

func secureTransports() map[string]secureFactory {
	return map[string]secureFactory{
		"tcp": func(t *testing.T, secret string) exchange.TransportFactory {
			cert, pin, err := tlsconf.DeriveSelfSigned(secret)
			if err != nil {
				t.Fatal(err)
			}
			return tcptransport.New(tcptransport.Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}})
		},
		"quic": func(t *testing.T, secret string) exchange.TransportFactory {
			cert, pin, err := tlsconf.DeriveSelfSigned(secret)
			if err != nil {
				t.Fatal(err)
			}
			return quictransport.New(quictransport.Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}})
		},
	}
}

// firstError opens one channel of g and returns its error and how long
// it took; the channel must fail.
func firstError(t *testing.T, g *exchange.InputGate) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	_, err := g.Next(testCtx(t, 20*time.Second))
	if err == nil {
		t.Fatal("the channel did not fail")
	}
	return err, time.Since(start)
}

// TestFastErrors: permanent errors are not retried (docs/architecture.md,
// "Failure policy", Retries): a pin mismatch and a duplicate consumer
// fail in < 1 s with the default retry schedule, naming the producer and
// the cause; a refused connection fails within PartitionRequestTimeout.
func TestFastErrors(t *testing.T) {
	for name, secure := range secureTransports() {
		t.Run(name+"/pin mismatch", func(t *testing.T) {
			checkG := transporttest.CheckGoroutines(t)
			prod, cons := newEnv(t, secure(t, "producer secret")), newEnv(t, secure(t, "consumer secret"))
			p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}}})
			if err != nil {
				t.Fatal(err)
			}
			err, took := firstError(t, g)
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, exchange.ErrAuthentication) || !strings.Contains(err.Error(), prod.Addr()) || took > time.Second {
				t.Fatalf("after %v: %v; want ErrAuthentication naming %s in < 1s", took, err, prod.Addr())
			}
			g.Close()
			p.Release()
			prod.Close()
			cons.Close()
			checkG()
		})
	}
	for _, tr := range transports() {
		t.Run(tr.name+"/duplicate consumer", func(t *testing.T) {
			checkG := transporttest.CheckGoroutines(t)
			ctx := testCtx(t, 20*time.Second)
			prod, cons := newEnv(t, tr.factory(t)), newEnv(t, tr.factory(t))
			part := startProducer(t, ctx, prod)
			spec := []exchange.ChannelSpec{{Partition: part.ID(), Subpartition: 1, Addr: prod.Addr()}}
			first, err := cons.CreateInputGate(exchange.GateConfig{Channels: spec})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := first.Next(ctx); err != nil {
				t.Fatal(err)
			}
			second, err := cons.CreateInputGate(exchange.GateConfig{Channels: spec})
			if err != nil {
				t.Fatal(err)
			}
			err, took := firstError(t, second)
			t.Logf("after %v: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, exchange.ErrAlreadyConsumed) || !strings.Contains(err.Error(), "producer "+prod.Addr()+" refused") ||
				!strings.Contains(err.Error(), "subpartition 1 of partition") || took > time.Second {
				t.Fatalf("after %v: %v; want ErrAlreadyConsumed saying the producer refused: subpartition 1 has a consumer, in < 1s", took, err)
			}
			first.Close()
			second.Close()
			part.Release()
			prod.Close()
			cons.Close()
			checkG()
		})
	}
	t.Run("tcp/connection refused", func(t *testing.T) {
		checkG := transporttest.CheckGoroutines(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nobody listens there now
		cons := newEnv(t, tcptransport.New(tcptransport.Config{}))
		g, err := cons.CreateInputGate(exchange.GateConfig{PartitionRequestTimeout: 300 * time.Millisecond,
			Channels: []exchange.ChannelSpec{{Partition: exchange.NewPartitionID(), Addr: addr}}})
		if err != nil {
			t.Fatal(err)
		}
		err, took := firstError(t, g)
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		if !errors.Is(err, exchange.ErrConnectionLost) || !strings.Contains(err.Error(), addr) ||
			!strings.Contains(err.Error(), "connection refused") || took > time.Second {
			t.Fatalf("after %v: %v; want a refused connection to %s within 1s", took, err, addr)
		}
		g.Close()
		cons.Close()
		checkG()
	})
	t.Run("tcp/unknown host", func(t *testing.T) {
		checkG := transporttest.CheckGoroutines(t)
		cons := newEnv(t, tcptransport.New(tcptransport.Config{}))
		const addr = "nonexistent.invalid:7003" // RFC 6761: never resolves
		g, err := cons.CreateInputGate(exchange.GateConfig{PartitionRequestTimeout: 3 * time.Second,
			Channels: []exchange.ChannelSpec{{Partition: exchange.NewPartitionID(), Addr: addr}}})
		if err != nil {
			t.Fatal(err)
		}
		err, took := firstError(t, g)
		t.Logf("after %v: %v", took.Round(time.Millisecond), err)
		if dns := (*net.DNSError)(nil); !errors.As(err, &dns) || !dns.IsNotFound {
			g.Close()
			cons.Close()
			t.Skipf("no resolver answers here (%v): a temporary DNS failure is retried", err)
		}
		if !strings.Contains(err.Error(), "host not found") || !strings.Contains(err.Error(), addr) || took > 5*time.Second {
			t.Fatalf("after %v: %v; want 'host not found' naming %s without retries", took, err, addr)
		}
		g.Close()
		cons.Close()
		checkG()
	})
}
