package exchange

import (
	"cmp"
	"fmt"
	"time"
)

// withDefaults fills the zero values of c with the documented defaults.
func (c Config) withDefaults() Config {
	c.NetworkMemory = cmp.Or(c.NetworkMemory, DefaultNetworkMemory)
	c.SegmentSize = cmp.Or(c.SegmentSize, DefaultSegmentSize)
	c.MaxRecordSize = cmp.Or(c.MaxRecordSize, DefaultMaxRecordSize)
	if c.SpanningRecordMemory == 0 && c.MaxRecordSize > 0 {
		c.SpanningRecordMemory = max(DefaultSpanningRecordMemory, 4*(int64(c.MaxRecordSize)+4))
	}
	c.ListenAddr = cmp.Or(c.ListenAddr, "127.0.0.1:0")
	return c
}

// validate checks c after withDefaults; the segment size is checked by
// NewNetworkBufferPool.
func (c Config) validate() error {
	switch {
	case c.NetworkMemory < 0:
		return configError("NetworkMemory", c.NetworkMemory, "must be positive")
	case c.SegmentSize < 0:
		return configError("SegmentSize", c.SegmentSize, "must be positive")
	case c.MaxRecordSize < 0 || c.MaxRecordSize > 1<<30:
		return configError("MaxRecordSize", c.MaxRecordSize, "must be in 1..1 GiB")
	case c.SpanningRecordMemory < int64(c.MaxRecordSize)+4:
		return configError("SpanningRecordMemory", c.SpanningRecordMemory, fmt.Sprintf("must hold one record of MaxRecordSize: at least %d", c.MaxRecordSize+4))
	}
	return nil
}

// withDefaults fills the zero values of c with the documented defaults
// (a fresh random ID included).
func (c PartitionConfig) withDefaults() PartitionConfig {
	if c.Type == (PartitionType{}) {
		c.Type = PipelinedBounded
	}
	c.BufferTimeout = cmp.Or(c.BufferTimeout, DefaultBufferTimeout)
	c.MinBuffers = cmp.Or(c.MinBuffers, c.Subpartitions+1)
	c.MaxBuffers = cmp.Or(c.MaxBuffers, max(2*c.Subpartitions+8, c.MinBuffers))
	if c.ID == (PartitionID{}) {
		c.ID = NewPartitionID()
	}
	return c
}

// validate checks c after withDefaults.
func (c PartitionConfig) validate() error {
	switch {
	case c.Subpartitions < 1:
		return configError("Subpartitions", c.Subpartitions, "must be at least 1")
	case c.Subpartitions > 1<<20:
		return configError("Subpartitions", c.Subpartitions, "must be at most 1048576")
	case c.Type != PipelinedBounded && c.Type != Blocking:
		return configError("Type", c.Type, "only PIPELINED_BOUNDED and BLOCKING are implemented")
	case c.Compression > CompressionLZ4:
		return configError("Compression", c.Compression, "must be CompressionDefault, CompressionNone or CompressionLZ4")
	case c.BufferTimeout < 0 && c.BufferTimeout != FlushEveryRecord && c.BufferTimeout != FlushFullBuffersOnly:
		return configError("BufferTimeout", c.BufferTimeout, "must be > 0, FlushEveryRecord or FlushFullBuffersOnly")
	case c.MinBuffers < 2:
		return configError("MinBuffers", c.MinBuffers, "must be at least 2")
	case c.MaxBuffers < c.MinBuffers:
		return configError("MaxBuffers", c.MaxBuffers, fmt.Sprintf("must be >= MinBuffers (%d)", c.MinBuffers))
	}
	return nil
}

// withDefaults fills the zero values of c with the documented defaults.
func (c GateConfig) withDefaults() GateConfig {
	switch c.ExclusiveBuffers {
	case 0:
		c.ExclusiveBuffers = DefaultExclusiveBuffers
	case NoExclusiveBuffers:
		c.ExclusiveBuffers = 0
	}
	c.FloatingBuffers = cmp.Or(c.FloatingBuffers, DefaultFloatingBuffers)
	c.InitialBackoff = cmp.Or(c.InitialBackoff, DefaultInitialBackoff)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, DefaultMaxBackoff)
	return c
}

// validate checks c after withDefaults.
func (c GateConfig) validate() error {
	switch {
	case len(c.Channels) == 0:
		return configError("Channels", 0, "need at least one channel")
	case c.ExclusiveBuffers < 0:
		return configError("ExclusiveBuffers", c.ExclusiveBuffers, "must be > 0 or NoExclusiveBuffers")
	case c.FloatingBuffers < 0:
		return configError("FloatingBuffers", c.FloatingBuffers, "must be >= 1")
	case c.InitialBackoff < 0 || c.MaxBackoff < c.InitialBackoff:
		return configError("MaxBackoff", c.MaxBackoff, "must be >= InitialBackoff > 0")
	case c.PartitionRequestTimeout < 0:
		return configError("PartitionRequestTimeout", c.PartitionRequestTimeout, "must be >= 0")
	}
	for i, ch := range c.Channels {
		if ch.Subpartition < 0 {
			return configError(fmt.Sprintf("Channels[%d].Subpartition", i), ch.Subpartition, "must be >= 0")
		}
	}
	return nil
}

// backoff is the partition request retry schedule of one channel.
type backoff struct {
	next, max time.Duration
	total     time.Duration // > 0: retry until this much time has passed
	started   time.Time
}

func newBackoff(c GateConfig) backoff {
	return backoff{next: c.InitialBackoff, max: c.MaxBackoff, total: c.PartitionRequestTimeout}
}

// delay returns the wait before the next retry, or false when retries are
// exhausted: after one retry at the maximum delay or, with a total, once
// the total has passed.
func (b *backoff) delay() (time.Duration, bool) {
	if b.started.IsZero() {
		b.started = time.Now()
	}
	d := b.next
	if b.total > 0 {
		left := b.total - time.Since(b.started)
		if left <= 0 {
			return 0, false
		}
		d = min(d, b.max, left)
		b.next = min(2*d, b.max)
		return d, true
	}
	if d > b.max {
		return 0, false
	}
	if d == b.max {
		b.next = b.max + 1
	} else {
		b.next = min(2*d, b.max)
	}
	return d, true
}
