package transporttest_test

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/transporttest/faultproxy"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// TestFaultsTCP runs the fault properties over TCP through a connection
// cutter: a reset connection fails every channel on it at once.
func TestFaultsTCP(t *testing.T) {
	transporttest.RunFaults(t, transporttest.Options{
		Name:    tcptransport.Name,
		Factory: func(testing.TB) exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) },
		Proxy: func(t testing.TB, target string) transporttest.Proxy {
			p, err := faultproxy.NewTCP(target)
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		CutDetection: 2 * time.Second,
	})
}

// quicIdleTimeout is short so that a blackholed path (the UDP proxy's
// Cut) is detected quickly, yet long enough that a starved race-detector
// run does not time a healthy connection out; keepalives at a quarter of
// it keep healthy idle connections open.
const quicIdleTimeout = 2 * time.Second

// TestFaultsQUIC runs the fault properties over QUIC through a UDP proxy
// that drops 1.5% of the datagrams each way, at random from a fixed seed.
// A cut path is silent, so it is detected by the idle timeout.
func TestFaultsQUIC(t *testing.T) {
	var lossy []*faultproxy.UDP
	transporttest.RunFaults(t, transporttest.Options{
		Name: quictransport.Name,
		Factory: func(t testing.TB) exchange.TransportFactory {
			cfg := quicConfig(t)
			cfg.IdleTimeout, cfg.KeepAlivePeriod = quicIdleTimeout, quicIdleTimeout/4
			return quictransport.New(cfg)
		},
		Proxy: func(t testing.TB, target string) transporttest.Proxy {
			p, err := faultproxy.NewUDP(target, faultproxy.RandomLoss(0.015, 2026))
			if err != nil {
				t.Fatal(err)
			}
			lossy = append(lossy, p)
			return p
		},
		CutDetection: quicIdleTimeout + 3*time.Second,
	})
	// The exactly-once property must have been tested under loss.
	if relayed, dropped := lossy[0].Stats(); dropped < relayed/200 {
		t.Errorf("the lossy proxy dropped %d of %d datagrams, want about 1.5%%", dropped, relayed+dropped)
	}
}

var (
	certOnce sync.Once
	testCert tls.Certificate
	testPin  [32]byte
	certErr  error
)

// quicConfig pins one shared self-signed certificate on every node.
func quicConfig(t testing.TB) quictransport.Config {
	t.Helper()
	certOnce.Do(func() { testCert, testPin, certErr = tlsconf.SelfSigned() })
	if certErr != nil {
		t.Fatal(certErr)
	}
	return quictransport.Config{TLS: tlsconf.Options{Certificate: &testCert, PinnedSHA256: [][32]byte{testPin}}}
}
