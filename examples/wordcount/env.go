package main

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/rpc"
	"github.com/qexchange/qexchange/tcptransport"
)

// tlsMaterial: every process derives the same certificate from the
// shared secret and pins it (for examples and trusted networks; real
// deployments use CA-signed certificates: rpc.Config.TLS.CAFile etc.).
type tlsMaterial struct {
	cert tls.Certificate
	pin  [32]byte
}

func deriveTLS(secret string) (*tlsMaterial, error) {
	cert, pin, err := tlsconf.DeriveSelfSigned(secret)
	if err != nil {
		return nil, err
	}
	return &tlsMaterial{cert, pin}, nil
}

// newRPCService is the process's control plane.
func newRPCService(transport, listen string, m *tlsMaterial) (*rpc.Service, error) {
	c := m.cert
	return rpc.NewService(rpc.Config{
		TLS:        tlsconf.Options{Certificate: &c, PinnedSHA256: [][32]byte{m.pin}},
		Transport:  transport,
		ListenAddr: listen,
	})
}

// newEnvironment is the process's data plane: the exchange over transport
// ("tcp" or "quic"). It is the one place that builds exchange.Config.
func newEnvironment(ctx context.Context, transport, listen string, m *tlsMaterial) (*exchange.Environment, error) {
	var f exchange.TransportFactory
	switch transport {
	case "tcp":
		f = tcptransport.New(tcptransport.Config{})
	case "quic":
		c := m.cert
		f = quictransport.New(quictransport.Config{TLS: tlsconf.Options{Certificate: &c, PinnedSHA256: [][32]byte{m.pin}}})
	default:
		return nil, fmt.Errorf("unknown transport %q (want tcp or quic)", transport)
	}
	return exchange.NewEnvironment(ctx, exchange.Config{
		NetworkMemory: 8 << 20, // a few partitions and gates per worker
		Transport:     f,
		ListenAddr:    listen,
	})
}
