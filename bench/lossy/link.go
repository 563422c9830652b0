package lossy

import (
	"context"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/bench/linkemu"
	"github.com/qexchange/qexchange/bench/results"
)

// Params are the link flags of one benchmark (one sweep point).
type Params struct {
	Loss  float64       // per packet, each direction
	Burst float64       // mean loss burst length (<= 1: independent)
	RTT   time.Duration // two one-way delays of RTT/2
	Rate  int64         // bits/s each direction, 0 = unlimited
	Queue int           // drop-tail packets, 0 = one BDP (at least 16)
	Seed  int64
}

// Config is the symmetric linkemu configuration of p.
func (p Params) Config(log zerolog.Logger) linkemu.Config {
	c := linkemu.Symmetric(p.Loss, p.Burst, p.RTT, p.Rate, p.Queue, p.Seed)
	c.Logger = log
	return c
}

// OneWay is the one-way propagation delay.
func (p Params) OneWay() time.Duration { return p.RTT / 2 }

// Link is an open emulated link: the producer's environment lives in
// namespace A, the consumer's in namespace B, so data flows A -> B.
type Link struct {
	*linkemu.Link
	P      Params
	unlock func()
}

// Unavailable returns a one-line reason why the emulated link cannot run
// here (not root, no /dev/net/tun, not Linux) and how to run it; "" when
// it can.
func Unavailable() string {
	if err := linkemu.Available(); err != nil {
		return "the emulated link (-loss/-rtt/-rate/-sweep...) cannot run here: " + err.Error()
	}
	return ""
}

// Open creates the link. It first removes namespaces left behind by
// benchmark processes that were killed.
// It holds the host's link lock until Close, so two link benchmarks (or
// a benchmark and the link tests) never measure side by side.
func Open(ctx context.Context, p Params, log zerolog.Logger) (*Link, error) {
	unlock, err := linkemu.LockHost(ctx)
	if err != nil {
		return nil, err
	}
	_, _ = linkemu.RemoveStale("")
	l, err := linkemu.New(ctx, p.Config(log))
	if err != nil {
		unlock()
		return nil, err
	}
	return &Link{Link: l, P: p, unlock: unlock}, nil
}

// Close tears the link down and releases the host's link lock.
func (l *Link) Close() error {
	err := l.Link.Close()
	if l.unlock != nil {
		l.unlock()
		l.unlock = nil
	}
	return err
}

// Sockets create sockets in one namespace, in the shapes the transports'
// and raw baselines' hooks take.
type Sockets struct {
	Dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	Listen       func(network, addr string) (net.Listener, error)
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// Addr is the namespace's address with port 0, to listen on.
	Addr string
}

// Sockets returns the socket hooks of side s.
func (l *Link) Sockets(s linkemu.Side) Sockets {
	return Sockets{
		Dial: l.DialFunc(s),
		Listen: func(network, addr string) (net.Listener, error) {
			var ln net.Listener
			err := l.Do(s, func() (err error) {
				ln, err = net.Listen(network, addr)
				return err
			})
			return ln, err
		},
		ListenPacket: func(network, addr string) (net.PacketConn, error) {
			var pc net.PacketConn
			err := l.Do(s, func() (err error) {
				pc, err = net.ListenPacket(network, addr)
				return err
			})
			return pc, err
		},
		Addr: net.JoinHostPort(l.Addr(s).String(), "0"),
	}
}

// probePackets sizes the loss train so that the ±20% tolerance is about 3
// standard deviations even at low loss: 200/loss packets (e.g. 40,000 at
// 0.5%), at least 20,000 (x burst length), at most 100,000.
func probePackets(p Params) int {
	if p.Loss <= 0 {
		return 0 // linkemu's default (2,000)
	}
	n := 20000 * max(1, p.Burst)
	n = max(n, 200/p.Loss)
	return int(math.Min(n, 100000))
}

// Probe measures the link (linkemu.Probe) and checks it against the
// configuration. It returns the figures for the JSON and, when the link is
// out of tolerance, an error saying which figure and by how much.
//
// A probe that fails is repeated (up to probeAttempts in all): a host busy
// with something else for a moment can starve the probe's sender, while a
// link that really differs from its configuration fails every time.
func (l *Link) Probe(ctx context.Context) (results.Probe, error) {
	var pr results.Probe
	var err error
	for range probeAttempts {
		if pr, err = l.probeOnce(ctx); err == nil || ctx.Err() != nil {
			break
		}
	}
	return pr, err
}

// probeAttempts bounds Probe's repetitions.
const probeAttempts = 3

func (l *Link) probeOnce(ctx context.Context) (results.Probe, error) {
	r, err := l.Link.Probe(ctx, linkemu.ProbeOptions{ProbePackets: probePackets(l.P)})
	if err != nil {
		return results.Probe{Error: err.Error()}, fmt.Errorf("link probe: %w", err)
	}
	pr := results.Probe{
		ConfiguredRTTUS: us(r.ConfiguredRTT),
		RTTMedianUS:     us(r.RTTMedian),
		RTTMinUS:        us(r.RTTMin),
		ConfiguredLoss:  r.ConfiguredLossAtoB,
		LossAtoB:        r.LossAtoB,
		LossBtoA:        r.LossBtoA,
		LossPackets:     r.LossSent,
		ConfiguredRate:  r.ConfiguredRate,
		Rate:            r.Rate,
		QueueDrops:      r.QueueDropsDuringLoss,
		Seconds:         r.Elapsed.Seconds(),
	}
	if err := r.Check(); err != nil {
		pr.Error = err.Error()
		return pr, err
	}
	pr.OK = true
	return pr, nil
}

// ProbeLine formats a probe as one line: measured against configured.
func ProbeLine(p results.Probe) string {
	s := fmt.Sprintf("link probe: RTT %.2f ms (configured %.2f), loss A->B %s B->A %s (configured %s, %d packets)",
		p.RTTMedianUS/1e3, p.ConfiguredRTTUS/1e3, pct(p.LossAtoB), pct(p.LossBtoA), pct(p.ConfiguredLoss), p.LossPackets)
	if p.ConfiguredRate > 0 {
		s += fmt.Sprintf(", rate %.1f Mbit/s (configured %.1f)", p.Rate/1e6, float64(p.ConfiguredRate)/1e6)
	}
	if p.OK {
		return s + ": OK"
	}
	return s + ": OUT OF TOLERANCE"
}

func pct(f float64) string { return fmt.Sprintf("%.3f%%", f*100) }

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// Quiesce waits until the link is idle: nothing queued or in flight and no
// new packet for three RTTs (at least 100 ms), or until limit. Then the
// loss pattern can be reset without stray packets of the previous run
// (FINs, QUIC closes) consuming the next run's drop decisions.
func (l *Link) Quiesce(ctx context.Context, limit time.Duration) {
	quiet := max(3*l.P.RTT, 100*time.Millisecond)
	deadline := time.Now().Add(limit)
	last := l.Stats()
	since := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
		s := l.Stats()
		if s.AtoB.PacketsIn != last.AtoB.PacketsIn || s.BtoA.PacketsIn != last.BtoA.PacketsIn ||
			s.AtoB.InFlight() != 0 || s.BtoA.InFlight() != 0 {
			last, since = s, time.Now()
			continue
		}
		if time.Since(since) >= quiet {
			return
		}
	}
}

// Counters is the emulator's activity between two Stats snapshots.
func Counters(before, after linkemu.Stats) *results.Emulator {
	d := func(a, b linkemu.DirStats) results.Direction {
		return results.Direction{
			Packets:      b.PacketsIn - a.PacketsIn,
			Forwarded:    b.Forwarded - a.Forwarded,
			DroppedLoss:  b.DroppedLoss - a.DroppedLoss,
			DroppedQueue: b.DroppedQueue - a.DroppedQueue,
		}
	}
	return &results.Emulator{Data: d(before.AtoB, after.AtoB), Ack: d(before.BtoA, after.BtoA)}
}
