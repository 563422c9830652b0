package quictransport_test

import (
	"context"
	"crypto/tls"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/quictransport"
)

var (
	certOnce sync.Once
	testCert tls.Certificate
	testPin  [32]byte
	certErr  error
)

// testConfig returns a configuration with a shared self-signed
// certificate pinned by every node.
func testConfig(t testing.TB) quictransport.Config {
	t.Helper()
	certOnce.Do(func() { testCert, testPin, certErr = tlsconf.SelfSigned() })
	if certErr != nil {
		t.Fatal(certErr)
	}
	return quictransport.Config{TLS: tlsconf.Options{Certificate: &testCert, PinnedSHA256: [][32]byte{testPin}}}
}

func testFactory(t testing.TB) exchange.TransportFactory {
	return quictransport.New(testConfig(t))
}

// newTestNode is a small node (4 MiB of 8 KiB segments) on QUIC with
// cfg; the caller closes it.
func newTestNode(t testing.TB, cfg quictransport.Config) *exchange.Environment {
	t.Helper()
	e, err := exchange.NewEnvironment(context.Background(), exchange.Config{NetworkMemory: 4 << 20, SegmentSize: 8 << 10, Transport: quictransport.New(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// dialRaw opens a bare QUIC connection to a node with cfg's certificate,
// as a misbehaving peer would.
func dialRaw(ctx context.Context, t testing.TB, addr string, cfg quictransport.Config, qc *quic.Config) *quic.Conn {
	t.Helper()
	c, err := quic.DialAddr(ctx, addr, &tls.Config{Certificates: []tls.Certificate{*cfg.TLS.Certificate},
		InsecureSkipVerify: true, NextProtos: []string{quictransport.ALPN}}, qc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
