package quictransport_test

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
)

func TestDeriveSelfSignedIsDeterministic(t *testing.T) {
	c1, f1, err := tlsconf.DeriveSelfSigned("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	c2, f2, err := tlsconf.DeriveSelfSigned("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	_, f3, _ := tlsconf.DeriveSelfSigned("other")
	if f1 != f2 || f1 == f3 || tlsconf.Fingerprint(&c1) != f1 || string(c1.Certificate[0]) != string(c2.Certificate[0]) {
		t.Fatalf("fingerprints %x %x %x", f1, f2, f3)
	}
}

func TestConfigRequiresVerification(t *testing.T) {
	cert, _, err := tlsconf.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	_, err = quictransport.New(quictransport.Config{TLS: tlsconf.Options{Certificate: &cert}})(exchange.TransportOptions{})
	if !errors.Is(err, tlsconf.ErrNoVerification) {
		t.Fatalf("no CA, no pins: %v, want ErrNoVerification", err)
	}
	_, err = quictransport.New(quictransport.Config{TLS: tlsconf.Options{PinnedSHA256: [][32]byte{{1}}}})(exchange.TransportOptions{})
	if !errors.Is(err, tlsconf.ErrNoCertificate) {
		t.Fatalf("no certificate: %v, want ErrNoCertificate", err)
	}
}

// TestTLSVerification: a node with another pin cannot connect (the
// channel fails with a connection error naming the peer); CA
// verification works with the self-signed certificate as root.
func TestTLSVerification(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	good, goodPin, _ := tlsconf.DeriveSelfSigned("cluster A")
	other, otherPin, _ := tlsconf.DeriveSelfSigned("cluster B")
	node := func(cfg quictransport.Config) *exchange.Environment {
		cfg.HandshakeTimeout = 2 * time.Second
		e, err := exchange.NewEnvironment(context.Background(), exchange.Config{
			Transport: quictransport.New(cfg),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	prod := node(quictransport.Config{TLS: tlsconf.Options{Certificate: &good, PinnedSHA256: [][32]byte{goodPin}}})
	stranger := node(quictransport.Config{TLS: tlsconf.Options{Certificate: &other, PinnedSHA256: [][32]byte{otherPin}}})
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g, err := stranger.CreateInputGate(exchange.GateConfig{
		Channels:       []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}},
		InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Next(ctx)
	if !errors.Is(err, exchange.ErrAuthentication) || !strings.Contains(err.Error(), prod.Addr()) {
		t.Fatalf("unpinned peer: %v, want an authentication error naming %s", err, prod.Addr())
	}
	g.Close()

	// CA verification: the self-signed certificate is its own CA. The
	// derived certificate names "qexchange", so that is the server name.
	roots := x509.NewCertPool()
	roots.AddCert(good.Leaf)
	viaCA := node(quictransport.Config{TLS: tlsconf.Options{Certificate: &good, RootCAs: roots, ServerName: "qexchange"}})
	g2, err := viaCA.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: 1, Addr: prod.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EmitTo(ctx, 1, []byte("ca")); err != nil {
		t.Fatal(err)
	}
	p.Flush()
	if e, err := g2.Next(ctx); err != nil || string(e.Record) != "ca" {
		t.Fatalf("CA-verified peer: %q, %v", e.Record, err)
	}
	g2.Close()
	p.Release()
	prod.Close()
	stranger.Close()
	viaCA.Close()
	checkG()
}
