package linkemu

import "math/rand/v2"

// LossModel decides, packet by packet, whether a packet is lost. Each call
// to Drop consumes exactly one decision, so packet index i always gets the
// i-th decision of the sequence.
type LossModel interface {
	Drop() bool
}

// dirStream separates the random streams of the two directions and of the
// jitter generators.
const (
	streamLossAtoB uint64 = 0x9e3779b97f4a7c15
	streamLossBtoA uint64 = 0xbf58476d1ce4e5b9
	streamJitAtoB  uint64 = 0x94d049bb133111eb
	streamJitBtoA  uint64 = 0x2545f4914f6cdd1d
)

func newRand(seed int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), stream))
}

// Bernoulli drops each packet independently with probability P.
type Bernoulli struct {
	P   float64
	rng *rand.Rand
}

// NewBernoulli returns a Bernoulli loss model seeded with seed and stream.
func NewBernoulli(p float64, seed int64, stream uint64) *Bernoulli {
	return &Bernoulli{P: p, rng: newRand(seed, stream)}
}

// Drop reports whether the next packet is lost.
func (b *Bernoulli) Drop() bool {
	u := b.rng.Float64() // always draw: one decision per packet index
	return u < b.P
}

// GilbertElliott is a two-state Markov loss model: no loss in the Good
// state, every packet lost in the Bad state. Bursts (runs of Bad) are
// geometric with mean 1/PBadGood; the stationary loss rate is
// PGoodBad/(PGoodBad+PBadGood).
type GilbertElliott struct {
	PGoodBad, PBadGood float64
	bad                bool
	rng                *rand.Rand
}

func geEnter(loss, burst float64) float64 {
	r := 1 / burst
	return loss * r / (1 - loss)
}

// NewGilbertElliott returns a model with mean loss rate loss (0<loss<1) and
// mean burst length burst (>1 packets). It starts in the Good state.
func NewGilbertElliott(loss, burst float64, seed int64, stream uint64) *GilbertElliott {
	return &GilbertElliott{PGoodBad: geEnter(loss, burst), PBadGood: 1 / burst, rng: newRand(seed, stream)}
}

// Drop reports whether the next packet is lost: the state moves first, then
// the packet is lost iff the new state is Bad.
func (g *GilbertElliott) Drop() bool {
	u := g.rng.Float64()
	if g.bad {
		if u < g.PBadGood {
			g.bad = false
		}
	} else if u < g.PGoodBad {
		g.bad = true
	}
	return g.bad
}

type noLoss struct{}

func (noLoss) Drop() bool { return false }

type allLoss struct{}

func (allLoss) Drop() bool { return true }

// NewLossModel returns the loss model that d selects, seeded from seed and
// stream (use a different stream per direction).
func NewLossModel(d Direction, seed int64, stream uint64) LossModel {
	switch {
	case d.Loss <= 0:
		return noLoss{}
	case d.Loss >= 1:
		return allLoss{}
	case d.BurstLen > 1:
		return NewGilbertElliott(d.Loss, d.BurstLen, seed, stream)
	default:
		return NewBernoulli(d.Loss, seed, stream)
	}
}
