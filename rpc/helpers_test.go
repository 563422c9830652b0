package rpc

import (
	"context"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

var transports = []string{TCP, QUIC}

var testCert struct {
	once sync.Once
	cert tls.Certificate
	pin  [32]byte
	err  error
}

// testConfig is a loopback config with a shared self-signed certificate
// both sides pin.
func testConfig(t testing.TB, transport string) Config {
	t.Helper()
	testCert.once.Do(func() {
		testCert.cert, testCert.pin, testCert.err = tlsconf.SelfSigned("localhost", "127.0.0.1")
	})
	if testCert.err != nil {
		t.Fatal(testCert.err)
	}
	c := testCert.cert
	return Config{TLS: tlsconf.Options{Certificate: &c, PinnedSHA256: [][32]byte{testCert.pin}}, Transport: transport, CallTimeout: 5 * time.Second}
}

// pair starts a server and a client service on transport; both close at
// the end of the test, which then checks for leaked goroutines.
func pair(t testing.TB, transport string, mod func(*Config)) (server, client *Service) {
	t.Helper()
	check := transporttest.CheckGoroutines(t)
	t.Cleanup(check)
	mk := func() *Service {
		cfg := testConfig(t, transport)
		if mod != nil {
			mod(&cfg)
		}
		s, err := NewService(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return s
	}
	server, client = mk(), mk()
	return server, client
}

// startEndpoint creates and starts an endpoint on s.
func startEndpoint(t testing.TB, s *Service, cfg EndpointConfig, register func(*Endpoint)) *Endpoint {
	t.Helper()
	ep, err := s.NewEndpoint(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if register != nil {
		register(ep)
	}
	if err := ep.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	return ep
}

// ctxT is a context bounded for one test step.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t testing.TB, client, server *Service, id string) *Gateway {
	t.Helper()
	g, err := client.Connect(ctxT(t), server.Addr(), id, id)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type incReq struct{ By int }
type incResp struct{ Value int }
