package tcptransport

import (
	"errors"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	d := Config{}.withDefaults()
	if d.ConnectionsPerNode != 1 || d.ConnectTimeout != DefaultConnectTimeout || d.KeepAlive != DefaultKeepAlive || d.DeadPeerTimeout != DefaultDeadPeerTimeout || d.WriteBatchBytes != DefaultWriteBatchBytes ||
		d.MaxConnections != DefaultMaxConnections || d.MaxConnectionsPerAddress != DefaultMaxConnectionsPerAddress ||
		d.IdleConnectionTimeout != DefaultIdleConnectionTimeout || d.MaxControlBytes != DefaultMaxControlBytes {
		t.Errorf("defaults %+v", d)
	}
	for _, c := range []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"zero", Config{}, ""},
		{"keepalive off", Config{KeepAlive: -1}, ""},
		{"dead peer timeout off", Config{DeadPeerTimeout: -1}, ""},
		{"dead peer timeout below keepalive", Config{KeepAlive: 10 * time.Second, DeadPeerTimeout: 5 * time.Second}, "tcptransport.DeadPeerTimeout"},
		{"64 connections", Config{ConnectionsPerNode: 64}, ""},
		{"negative connections", Config{ConnectionsPerNode: -1}, "tcptransport.ConnectionsPerNode"},
		{"65 connections", Config{ConnectionsPerNode: 65}, "tcptransport.ConnectionsPerNode"},
		{"negative connect timeout", Config{ConnectTimeout: -time.Second}, "tcptransport.ConnectTimeout"},
		{"negative send buffer", Config{SendBuffer: -1}, "tcptransport.SendBuffer"},
		{"negative receive buffer", Config{ReceiveBuffer: -1}, "tcptransport.ReceiveBuffer"},
		{"negative batch", Config{WriteBatchBytes: -1}, "tcptransport.WriteBatchBytes"},
		{"bad port range", Config{PortRange: "9-3"}, "tcptransport.PortRange"},
		{"port range", Config{PortRange: "7000-7010"}, ""},
		{"idle timeout off", Config{IdleConnectionTimeout: -1}, ""},
		{"negative connection cap", Config{MaxConnections: -1}, "tcptransport.MaxConnections"},
		{"negative per-address cap", Config{MaxConnectionsPerAddress: -1}, "tcptransport.MaxConnectionsPerAddress"},
		{"negative control bytes", Config{MaxControlBytes: -1}, "tcptransport.MaxControlBytes"},
	} {
		_, err := c.cfg.withDefaults().validate()
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var ce *exchange.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, exchange.ErrInvalidConfig) {
			t.Errorf("%s: %v, want a *ConfigError on %s", c.name, err, c.field)
		}
		// The factory refuses it the same way.
		if _, err := New(c.cfg)(exchange.TransportOptions{SegmentSize: testSegment}); !errors.As(err, &ce) {
			t.Errorf("%s: factory: %v", c.name, err)
		}
	}
}

// TestKeepAliveCoversDeadPeerTimeout: the probes start after KeepAlive of
// silence and are enough to reach DeadPeerTimeout (30 s by default).
func TestKeepAliveCoversDeadPeerTimeout(t *testing.T) {
	for _, c := range []struct {
		ka, dead time.Duration
		count    int
	}{
		{0, 0, 5}, // defaults: 5 s + 5 probes x 5 s = 30 s
		{time.Second, 2500 * time.Millisecond, 2},
		{time.Second, time.Second, 1},
		{time.Second, -1, -1}, // the kernel's count
	} {
		tr := &Transport{cfg: Config{KeepAlive: c.ka, DeadPeerTimeout: c.dead}.withDefaults()}
		ka := tr.keepAliveConfig()
		if ka.Count != c.count || ka.Idle != tr.cfg.KeepAlive || ka.Interval != tr.cfg.KeepAlive || !ka.Enable {
			t.Errorf("KeepAlive %v, DeadPeerTimeout %v: %+v, want %d probes", c.ka, c.dead, ka, c.count)
		}
	}
}
