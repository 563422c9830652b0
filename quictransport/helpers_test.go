package quictransport_test

import (
	"crypto/tls"
	"sync"
	"testing"

	"github.com/qexchange/qexchange/exchange"
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
	certOnce.Do(func() { testCert, testPin, certErr = quictransport.SelfSigned() })
	if certErr != nil {
		t.Fatal(certErr)
	}
	return quictransport.Config{Certificate: &testCert, PinnedSHA256: [][32]byte{testPin}}
}

func testFactory(t testing.TB) exchange.TransportFactory {
	return quictransport.New(testConfig(t))
}
