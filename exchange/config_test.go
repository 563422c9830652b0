package exchange

import (
	"errors"
	"testing"
	"time"
)

// wantConfigError checks that err is a *ConfigError on field that matches
// ErrInvalidConfig (or nil when field is empty).
func wantConfigError(t *testing.T, name string, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Errorf("%s: %v, want no error", name, err)
		}
		return
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != field || !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("%s: %v, want a *ConfigError on %s", name, err, field)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	d := Config{}.withDefaults()
	if d.NetworkMemory != DefaultNetworkMemory || d.SegmentSize != DefaultSegmentSize || d.MaxRecordSize != DefaultMaxRecordSize || d.ListenAddr != "127.0.0.1:0" {
		t.Errorf("defaults %+v", d)
	}
	for _, c := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"zero", Config{}, ""},
		{"negative memory", Config{NetworkMemory: -1}, "NetworkMemory"},
		{"negative segment", Config{SegmentSize: -1}, "SegmentSize"},
		{"negative record", Config{MaxRecordSize: -1}, "MaxRecordSize"},
		{"record above 1 GiB", Config{MaxRecordSize: 1<<30 + 1}, "MaxRecordSize"},
	} {
		wantConfigError(t, c.name, c.cfg.withDefaults().validate(), c.field)
	}
}

func TestPartitionConfigDefaultsAndValidation(t *testing.T) {
	d := PartitionConfig{Subpartitions: 4}.withDefaults()
	if d.Type != PipelinedBounded || d.BufferTimeout != DefaultBufferTimeout || d.MinBuffers != 5 || d.MaxBuffers != 16 || d.ID == (PartitionID{}) {
		t.Errorf("defaults %+v", d)
	}
	for _, c := range []struct {
		name  string
		cfg   PartitionConfig
		field string
	}{
		{"defaults", PartitionConfig{Subpartitions: 1}, ""},
		{"no subpartitions", PartitionConfig{}, "Subpartitions"},
		{"negative subpartitions", PartitionConfig{Subpartitions: -1}, "Subpartitions"},
		{"negative timeout", PartitionConfig{Subpartitions: 1, BufferTimeout: -time.Second}, "BufferTimeout"},
		{"flush every record", PartitionConfig{Subpartitions: 1, BufferTimeout: FlushEveryRecord}, ""},
		{"negative min buffers", PartitionConfig{Subpartitions: 1, MinBuffers: -1}, "MinBuffers"},
		{"negative max buffers", PartitionConfig{Subpartitions: 1, MaxBuffers: -1}, "MaxBuffers"},
	} {
		wantConfigError(t, c.name, c.cfg.withDefaults().validate(), c.field)
	}
}

func TestGateConfigDefaultsAndValidation(t *testing.T) {
	one := []ChannelSpec{{}}
	d := GateConfig{Channels: one}.withDefaults()
	if d.ExclusiveBuffers != DefaultExclusiveBuffers || d.FloatingBuffers != DefaultFloatingBuffers ||
		d.InitialBackoff != DefaultInitialBackoff || d.MaxBackoff != DefaultMaxBackoff || d.PartitionRequestTimeout != 0 {
		t.Errorf("defaults %+v", d)
	}
	if n := (GateConfig{Channels: one, ExclusiveBuffers: NoExclusiveBuffers}).withDefaults().ExclusiveBuffers; n != 0 {
		t.Errorf("NoExclusiveBuffers gave %d exclusive buffers", n)
	}
	for _, c := range []struct {
		name  string
		cfg   GateConfig
		field string
	}{
		{"defaults", GateConfig{Channels: one}, ""},
		{"no channels", GateConfig{}, "Channels"},
		{"negative exclusive", GateConfig{Channels: one, ExclusiveBuffers: -2}, "ExclusiveBuffers"},
		{"negative floating", GateConfig{Channels: one, FloatingBuffers: -1}, "FloatingBuffers"},
		{"negative backoff", GateConfig{Channels: one, InitialBackoff: -1}, "MaxBackoff"},
		{"max below initial", GateConfig{Channels: one, InitialBackoff: time.Second, MaxBackoff: time.Millisecond}, "MaxBackoff"},
		{"negative request timeout", GateConfig{Channels: one, PartitionRequestTimeout: -1}, "PartitionRequestTimeout"},
		{"negative subpartition", GateConfig{Channels: []ChannelSpec{{Subpartition: -1}}}, "Channels[0].Subpartition"},
	} {
		wantConfigError(t, c.name, c.cfg.withDefaults().validate(), c.field)
	}
}

// TestBackoffTotal: with PartitionRequestTimeout the retries go on at the
// maximum delay until the total has passed, the last delay clipped to it.
func TestBackoffTotal(t *testing.T) {
	b := newBackoff(GateConfig{InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, PartitionRequestTimeout: time.Hour})
	var got []time.Duration
	for range 5 {
		d, ok := b.delay()
		if !ok {
			t.Fatal("retries ended before the total")
		}
		got = append(got, d)
	}
	want := []time.Duration{1, 2, 4, 4, 4}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	b.started = time.Now().Add(-time.Hour) // the total has passed
	if _, ok := b.delay(); ok {
		t.Fatal("a retry after the total")
	}
	b = newBackoff(GateConfig{InitialBackoff: time.Millisecond, MaxBackoff: time.Hour, PartitionRequestTimeout: 10 * time.Millisecond})
	b.delay()
	b.started = time.Now().Add(-9 * time.Millisecond)
	if d, ok := b.delay(); !ok || d > time.Millisecond {
		t.Fatalf("delay %v near the end of the total, want it clipped to <= 1ms", d)
	}
}
