package quictransport

import (
	"crypto/tls"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
)

// ConnTo returns the connection tr (a QUIC transport) holds to addr, or
// nil: tests open raw streams on the connection real channels use.
func ConnTo(tr exchange.Transport, addr string) *quic.Conn {
	t := tr.(*Transport)
	cc, ok := t.peers.Lookup(addr)
	if !ok {
		return nil
	}
	return cc.waitConn()
}

// RawConfigs returns the TLS and QUIC configurations the transport would
// use for cfg, for raw quic-go baselines with the same settings.
func RawConfigs(cfg Config, segmentSize int) (server, client *tls.Config, serverQUIC, clientQUIC *quic.Config, err error) {
	cfg = cfg.withDefaults(segmentSize)
	ts, err := tlsconf.New("quictransport", cfg.TLS)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return ts.ServerConfig(ALPN), ts.ClientConfig("127.0.0.1", ALPN), cfg.quicConfig(true, nil), cfg.quicConfig(false, nil), nil
}

// Conns returns the number of client connections tr (a QUIC transport)
// holds.
func Conns(tr exchange.Transport) int { return len(tr.(*Transport).peers.Conns()) }
