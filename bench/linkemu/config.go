package linkemu

import (
	"fmt"
	"math"
	"time"

	"github.com/rs/zerolog"
)

// DefaultMTU is the MTU of both TUN devices when Config.MTU is 0.
const DefaultMTU = 1500

// minQueuePackets is the smallest default drop-tail queue.
const minQueuePackets = 16

// Direction configures one direction of the link.
type Direction struct {
	// Loss is the packet loss probability in [0,1]. With BurstLen <= 1 every
	// packet is dropped independently (Bernoulli).
	Loss float64
	// BurstLen is the mean loss burst length in packets. A value > 1 selects
	// a Gilbert-Elliott model (Good state: no loss, Bad state: every packet
	// lost) whose stationary loss rate is Loss and whose mean burst is BurstLen.
	BurstLen float64
	// Delay is the fixed one-way propagation delay.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0,Jitter] per packet.
	// Packets are never reordered: a packet never leaves before the one
	// ahead of it.
	Jitter time.Duration
	// RateBitsPerSec is the bottleneck rate (token bucket with a depth of one
	// packet, i.e. a serializer); 0 means unlimited.
	RateBitsPerSec int64
	// QueuePackets is the drop-tail queue limit in front of the rate limiter
	// (packets waiting or being serialized). 0 selects one bandwidth-delay
	// product, rate*2*Delay/MTU, but at least 16 packets.
	QueuePackets int
}

// Config configures a Link.
type Config struct {
	AtoB, BtoA Direction
	// Seed seeds the loss and jitter generators. Two links with the same
	// seed drop the same packet indexes in each direction.
	Seed int64
	// MTU of the TUN devices; 0 means 1500.
	MTU int
	// Logger receives setup/teardown events; the zero value is disabled.
	Logger zerolog.Logger
}

// Symmetric returns a Config with the same settings in both directions and
// a one-way delay of rtt/2.
func Symmetric(loss, burst float64, rtt time.Duration, rate int64, queue int, seed int64) Config {
	d := Direction{Loss: loss, BurstLen: burst, Delay: rtt / 2, RateBitsPerSec: rate, QueuePackets: queue}
	return Config{AtoB: d, BtoA: d, Seed: seed}
}

func (c Config) mtu() int {
	if c.MTU <= 0 {
		return DefaultMTU
	}
	return c.MTU
}

// queueLimit returns the effective drop-tail limit for d.
func (d Direction) queueLimit(mtu int) int {
	if d.QueuePackets > 0 {
		return d.QueuePackets
	}
	if d.RateBitsPerSec <= 0 {
		return minQueuePackets
	}
	bdp := float64(d.RateBitsPerSec) * (2 * d.Delay).Seconds() / float64(8*mtu)
	if q := int(math.Ceil(bdp)); q > minQueuePackets {
		return q
	}
	return minQueuePackets
}

// ConfigError reports an invalid Config.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return "linkemu: invalid config: " + e.Field + ": " + e.Reason
}

func (d Direction) validate(name string) error {
	switch {
	case math.IsNaN(d.Loss) || d.Loss < 0 || d.Loss > 1:
		return &ConfigError{name + ".Loss", fmt.Sprintf("%v not in [0,1]", d.Loss)}
	case math.IsNaN(d.BurstLen) || d.BurstLen < 0:
		return &ConfigError{name + ".BurstLen", fmt.Sprintf("%v is negative", d.BurstLen)}
	case d.Delay < 0:
		return &ConfigError{name + ".Delay", "negative"}
	case d.Jitter < 0:
		return &ConfigError{name + ".Jitter", "negative"}
	case d.RateBitsPerSec < 0:
		return &ConfigError{name + ".RateBitsPerSec", "negative"}
	case d.QueuePackets < 0:
		return &ConfigError{name + ".QueuePackets", "negative"}
	}
	if d.BurstLen > 1 && d.Loss > 0 && d.Loss < 1 {
		if p := geEnter(d.Loss, d.BurstLen); p > 1 {
			return &ConfigError{name + ".BurstLen", fmt.Sprintf("loss %v with mean burst %v needs P(Good->Bad)=%.3f > 1; use a longer burst", d.Loss, d.BurstLen, p)}
		}
	}
	return nil
}

func (c Config) validate() error {
	if err := c.AtoB.validate("AtoB"); err != nil {
		return err
	}
	if err := c.BtoA.validate("BtoA"); err != nil {
		return err
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 9000) {
		return &ConfigError{"MTU", fmt.Sprintf("%d not in [576,9000]", c.MTU)}
	}
	return nil
}
