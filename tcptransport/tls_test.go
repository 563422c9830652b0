package tcptransport

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
)

// tlsConfig is a TLS configuration every test node shares: a
// certificate derived from secret (default "tcptransport test"), pinned.
func tlsConfig(t testing.TB, secret ...string) Config {
	s := "tcptransport test"
	if len(secret) > 0 {
		s = secret[0]
	}
	cert, pin, err := tlsconf.DeriveSelfSigned(s)
	if err != nil {
		t.Fatal(err)
	}
	return Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}}
}

func TestTLSConformance(t *testing.T) {
	cfg := tlsConfig(t)
	transporttest.Run(t, transporttest.Options{
		Name:          Name + "+tls",
		Factory:       func(testing.TB) exchange.TransportFactory { return New(cfg) },
		ScaleChannels: 256,
	})
}

func TestTLSConfigErrors(t *testing.T) {
	cert, _, err := tlsconf.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"no verification": {TLS: tlsconf.Options{Certificate: &cert}},
		"no certificate":  {TLS: tlsconf.Options{PinnedSHA256: [][32]byte{{1}}}},
		"missing files":   {TLS: tlsconf.Options{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem", CAFile: "/nonexistent/ca.pem"}},
	} {
		_, err := New(cfg)(exchange.TransportOptions{SegmentSize: testSegment})
		if !errors.Is(err, exchange.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
		// A field that is wrong is named by its path in Config.
		var ce *exchange.ConfigError
		if cfg.TLS.CertFile != "" && (!errors.As(err, &ce) || ce.Field != "tcptransport.TLS.CertFile") {
			t.Errorf("%s: %v, want a *exchange.ConfigError for tcptransport.TLS.CertFile", name, err)
		}
	}
}

// TestTLSUnauthenticated: a client without the right credentials reads
// nothing of a partition that has data, and the server logs the refusal
// with the peer's address and the reason.
func TestTLSUnauthenticated(t *testing.T) {
	cases := []struct {
		name   string
		dial   func(t *testing.T, addr string) *rawClient
		logged string
	}{
		{"plain text", func(t *testing.T, addr string) *rawClient { return dialRaw(t, addr, false) },
			"first record does not look like a TLS handshake"},
		{"certificate not pinned", func(t *testing.T, addr string) *rawClient {
			c := dialRaw(t, addr, false)
			cert, _, err := tlsconf.SelfSigned()
			if err != nil {
				t.Fatal(err)
			}
			// This client trusts anyone; the server must not trust it.
			tc := tls.Client(c.nc, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true,
				NextProtos: []string{ALPN}, MinVersion: tls.VersionTLS13})
			_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tc.Handshake(); err != nil {
				t.Logf("client handshake: %v", err) // TLS 1.3: usually learnt at the first read
			}
			c.nc, c.rd = tc, wire.NewReader(tc, c.o)
			return c
		}, "is not pinned"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkG := transporttest.CheckGoroutines(t)
			var log logBuf
			prod := newEnv(t, tlsConfig(t), &log)
			p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.EmitTo(testCtx(t, 10*time.Second), 0, []byte("secret record")); err != nil {
				t.Fatal(err)
			}
			c := tc.dial(t, prod.Addr())
			peer := c.nc.LocalAddr().String()
			hello := wire.NewHello(c.o)
			// Write errors are expected once the server has refused us.
			_, _ = c.nc.Write(append(c.frame(hello), c.frame(&wire.PartitionRequest{PartitionID: wire.ID(p.ID()), ReceiverID: wire.ID(exchange.NewChannelID()), Credit: 2})...))
			_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				m, err := c.rd.Next()
				if err != nil {
					break
				}
				if e, ok := m.(*wire.ErrorResponse); ok && e.Fatal {
					if !strings.Contains(e.Message, "requires TLS") {
						t.Errorf("fatal ErrorResponse %q, want it to say the node requires TLS", e.Message)
					}
					continue
				}
				t.Fatalf("an unauthenticated client read %s", m.ID())
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(log.String(), peer) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // polling the log, not synchronising
			}
			var line string
			for _, l := range strings.Split(log.String(), "\n") {
				if strings.Contains(l, peer) && strings.Contains(l, "TLS handshake refused") {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, tc.logged) || !strings.Contains(line, `"level":"warn"`) {
				t.Fatalf("no warning naming the peer %s and %q; log:\n%s", peer, tc.logged, log.String())
			}
			c.nc.Close()
			p.Release()
			prod.Close()
			checkG()
		})
	}
}

// TestTLSRefusedFast: a consumer the producer refuses, or that refuses the
// producer, fails at once (not after the retries of a missing producer)
// with an error naming the peer and the cause.
func TestTLSRefusedFast(t *testing.T) {
	cases := []struct {
		name       string
		prod, cons Config
		want       string
		auth       bool // an *exchange.AuthError
	}{
		{"pin mismatch", tlsConfig(t), tlsConfig(t, "another secret"), "is not pinned", true},
		{"consumer without TLS", tlsConfig(t), Config{}, "requires TLS", false},
		{"producer without TLS", Config{}, tlsConfig(t), "does not look like a TLS handshake", true},
	}
	// The consumer trusts the producer, which does not trust it.
	untrusted := tlsConfig(t, "another secret")
	untrusted.TLS.PinnedSHA256 = tlsConfig(t).TLS.PinnedSHA256
	cases = append(cases, struct {
		name       string
		prod, cons Config
		want       string
		auth       bool
	}{"consumer not pinned by the producer", tlsConfig(t), untrusted, "bad certificate", true})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkG := transporttest.CheckGoroutines(t)
			prod, cons := newEnv(t, tc.prod, nil), newEnv(t, tc.cons, nil)
			p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
			if err != nil {
				t.Fatal(err)
			}
			g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}}})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = g.Next(testCtx(t, 10*time.Second))
			took := time.Since(start)
			t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
			if took > time.Second {
				t.Errorf("took %v, want < 1s", took)
			}
			var ae *exchange.AuthError
			if err == nil || !strings.Contains(err.Error(), prod.Addr()) || !strings.Contains(err.Error(), tc.want) ||
				errors.Is(err, exchange.ErrConnectionLost) || errors.As(err, &ae) != tc.auth {
				t.Fatalf("got %v; want an error naming %s and %q (AuthError %v)", err, prod.Addr(), tc.want, tc.auth)
			}
			g.Close()
			p.Release()
			prod.Close()
			cons.Close()
			checkG()
		})
	}
}
