package quictransport

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	d := Config{}.withDefaults(32 << 10)
	if d.ConnectionsPerNode != 1 || d.HandshakeTimeout != DefaultHandshakeTimeout || d.IdleTimeout != DefaultIdleTimeout ||
		d.KeepAlivePeriod != DefaultKeepAlivePeriod || d.MaxIncomingStreams != DefaultMaxIncomingStreams || d.MaxHandshakingStreams != DefaultMaxHandshakingStreams ||
		d.StreamReceiveWindow != StreamReceiveWindowFor(32<<10) || d.UDPBufferSize != DefaultUDPBufferSize ||
		d.WriteGather != DefaultWriteGather {
		t.Errorf("defaults %+v", d)
	}
	if w := StreamReceiveWindowFor(1 << 20); w <= DefaultStreamReceiveWindow {
		t.Errorf("window %d for 1 MiB segments, want more than the default", w)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	serve := func(*quic.Conn) {}
	for _, c := range []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"zero", Config{}, ""},
		{"64 connections", Config{ConnectionsPerNode: 64}, ""},
		{"negative connections", Config{ConnectionsPerNode: -1}, "quictransport.ConnectionsPerNode"},
		{"65 connections", Config{ConnectionsPerNode: 65}, "quictransport.ConnectionsPerNode"},
		{"negative handshake", Config{HandshakeTimeout: -time.Second}, "quictransport.HandshakeTimeout"},
		{"no write gather", Config{WriteGather: NoWriteGather}, ""},
		{"negative write gather", Config{WriteGather: -time.Second}, "quictransport.WriteGather"},
		{"negative idle", Config{IdleTimeout: -time.Second}, "quictransport.IdleTimeout"},
		{"negative keepalive", Config{KeepAlivePeriod: -time.Second}, "quictransport.KeepAlivePeriod"},
		{"keepalive not below idle", Config{IdleTimeout: time.Second, KeepAlivePeriod: time.Second}, "quictransport.KeepAlivePeriod"},
		{"short idle, default keepalive", Config{IdleTimeout: time.Second}, ""},
		{"idle connection timeout off", Config{IdleConnectionTimeout: -1}, ""},
		{"negative streams", Config{MaxIncomingStreams: -1}, "quictransport.MaxIncomingStreams"},
		{"negative handshaking streams", Config{MaxHandshakingStreams: -1}, "quictransport.MaxHandshakingStreams"},
		{"negative UDP buffer", Config{UDPBufferSize: -1}, "quictransport.UDPBufferSize"},
		{"extra protocol", Config{ExtraProtocols: map[string]func(*quic.Conn){"rpc/1": serve}}, ""},
		{"extra protocol is the exchange's", Config{ExtraProtocols: map[string]func(*quic.Conn){ALPN: serve}}, "quictransport.ExtraProtocols"},
		{"extra protocol without func", Config{ExtraProtocols: map[string]func(*quic.Conn){"rpc/1": nil}}, "quictransport.ExtraProtocols"},
		{"qlog dir", Config{QlogDir: filepath.Join(t.TempDir(), "new")}, ""},
		{"qlog dir is a file", Config{QlogDir: file}, "quictransport.QlogDir"},
	} {
		err := c.cfg.withDefaults(32 << 10).validate()
		var ce *exchange.ConfigError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.field != "" && (!errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, exchange.ErrInvalidConfig)):
			t.Errorf("%s: %v, want a *ConfigError on %s", c.name, err, c.field)
		}
	}
	// Missing TLS material is a configuration error too.
	for _, cfg := range []Config{{}, {TLS: tlsconf.Options{CertFile: file, KeyFile: file}}} {
		if _, err := New(cfg)(exchange.TransportOptions{}); !errors.Is(err, exchange.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", cfg, err)
		}
	}
}
