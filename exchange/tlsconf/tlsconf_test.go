package tlsconf_test

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
)

func TestNewRefusesIncompleteMaterial(t *testing.T) {
	cert, pin, err := tlsconf.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	if (tlsconf.Options{}).Enabled() || !(tlsconf.Options{PinnedSHA256: [][32]byte{pin}}).Enabled() {
		t.Fatal("Enabled")
	}
	for name, c := range map[string]struct {
		o    tlsconf.Options
		want error
	}{
		"no verification": {tlsconf.Options{Certificate: &cert}, tlsconf.ErrNoVerification},
		"no certificate":  {tlsconf.Options{PinnedSHA256: [][32]byte{pin}}, tlsconf.ErrNoCertificate},
		"missing CA file": {tlsconf.Options{Certificate: &cert, CAFile: "/nonexistent/ca.pem"}, exchange.ErrInvalidConfig},
	} {
		if _, err := tlsconf.New("pkg", c.o); !errors.Is(err, c.want) || !errors.Is(err, exchange.ErrInvalidConfig) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// TestPinMismatchIsHandshakeFailure: both ends of a handshake refused
// for an unpinned certificate see an error IsHandshakeFailure accepts,
// with the reason on the refusing side.
func TestPinMismatchIsHandshakeFailure(t *testing.T) {
	a, _, _ := tlsconf.DeriveSelfSigned("a")
	b, bPin, _ := tlsconf.DeriveSelfSigned("b")
	server, err := tlsconf.New("pkg", tlsconf.Options{Certificate: &b, PinnedSHA256: [][32]byte{bPin}}) // does not pin a
	if err != nil {
		t.Fatal(err)
	}
	client, err := tlsconf.New("pkg", tlsconf.Options{Certificate: &a, PinnedSHA256: [][32]byte{bPin}})
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	deadline := time.Now().Add(10 * time.Second)
	_ = c1.SetDeadline(deadline)
	_ = c2.SetDeadline(deadline)
	srvErr := make(chan error, 1)
	go func() {
		s := tls.Server(c2, server.ServerConfig("x"))
		err := s.Handshake()
		c2.Close()
		srvErr <- err
	}()
	cc := tls.Client(c1, client.ClientConfig("qexchange", "x"))
	err = cc.Handshake()
	if err == nil { // TLS 1.3: the client learns of the refusal at its first read
		_, err = cc.Read(make([]byte, 1))
	}
	serr := <-srvErr
	if !tlsconf.IsHandshakeFailure(serr) || !strings.Contains(serr.Error(), "pkg: client certificate") || !strings.Contains(serr.Error(), "not pinned") {
		t.Errorf("server: %v", serr)
	}
	if !tlsconf.IsHandshakeFailure(err) {
		t.Fatalf("client: %v, want a handshake failure", err)
	}
}
