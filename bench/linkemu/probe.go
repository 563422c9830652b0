package linkemu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// ProbeOptions tunes Link.Probe; zero values select defaults.
type ProbeOptions struct {
	// RTTPackets small packets are sent RTTInterval apart to measure RTT
	// (default 200 packets, 1 ms apart).
	RTTPackets  int
	RTTInterval time.Duration
	// ProbePackets is the size of the loss train (default 20,000 when either
	// direction has loss, 2,000 otherwise; multiplied by the mean burst
	// length for bursty loss, up to 100,000).
	ProbePackets int
	// PacketSize is the IP size of RTT and loss probe packets (default 100).
	PacketSize int
	// MaxPPS caps the loss train's packet rate (default 20,000/s). The train
	// is paced at min(MaxPPS, half the slower direction's rate).
	MaxPPS int
	// RateDuration is how long the rate burst is sent (default 250 ms).
	RateDuration time.Duration
	// SkipRate skips the rate measurement.
	SkipRate bool
	// Attempts bounds how often the loss train and the rate burst run
	// (default 3). A loss train is repeated, at half the rate, when it
	// caused queue drops; a rate burst when the bottleneck went idle during
	// it. Both happen only when the host delays the probe or the forwarder
	// (CPU contention), and are reported in the result.
	Attempts int
}

// ProbeResult holds measured and configured link figures.
type ProbeResult struct {
	// ConfiguredRTT is what an ideal link with this Config gives the probe's
	// packets: both delays, mean jitter and the serialization of one probe
	// packet each way.
	ConfiguredRTT      time.Duration
	RTTMedian, RTTMin  time.Duration
	RTTSent, RTTEchoed int

	ConfiguredLossAtoB, ConfiguredLossBtoA float64
	LossAtoB, LossBtoA                     float64
	LossSent                               int // packets sent A->B
	LossReceivedB                          int // received (and echoed) at B
	LossReceivedA                          int // echoes received at A
	LossPPS                                float64
	// QueueDropsDuringLoss counts packets of the loss train dropped by the
	// queues (both directions); they are excluded from LossAtoB/LossBtoA.
	// Nonzero only when the host delayed the probe or the forwarder; Check
	// fails above 1% of the train.
	QueueDropsDuringLoss uint64
	LossAttempts         int

	ConfiguredRate int64   // A->B bits/s; 0 = unlimited (rate not judged)
	Rate           float64 // measured A->B bits/s (IP bytes) at B; 0 if skipped
	RatePackets    int     // packets received at B during the rate burst
	RateIdle       uint64  // times the bottleneck went idle during the burst; must be 0
	RateAttempts   int

	Elapsed time.Duration
}

const (
	phaseRTT  = 1
	phaseLoss = 2
	phaseRate = 3
	probeHdr  = 14 // magic, phase, seq uint32, send time int64
	ipUDPHdr  = 28
)

type probeServer struct {
	mu       sync.Mutex
	recv     [4]int
	echoed   [4]int
	arrivals []time.Time
}

type probeClient struct {
	mu   sync.Mutex
	recv [4]int
	rtts []time.Duration
}

// Probe measures the link's RTT, loss per direction and A->B rate with UDP
// between a client in namespace A and an echo server in namespace B. It
// assumes no other traffic on the link meanwhile.
func (l *Link) Probe(ctx context.Context, opts ProbeOptions) (ProbeResult, error) {
	started := time.Now()
	cfg := l.cfg
	mtu := cfg.mtu()
	o := opts
	if o.RTTPackets <= 0 {
		o.RTTPackets = 200
	}
	if o.RTTInterval <= 0 {
		o.RTTInterval = time.Millisecond
	}
	if o.PacketSize <= 0 {
		o.PacketSize = 100
	}
	o.PacketSize = min(max(o.PacketSize, ipUDPHdr+probeHdr), mtu)
	if o.ProbePackets <= 0 {
		if cfg.AtoB.Loss > 0 || cfg.BtoA.Loss > 0 {
			burst := max(1, cfg.AtoB.BurstLen, cfg.BtoA.BurstLen)
			o.ProbePackets = min(int(20000*burst), 100000)
		} else {
			o.ProbePackets = 2000
		}
	}
	if o.MaxPPS <= 0 {
		o.MaxPPS = 20000
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.RateDuration <= 0 {
		o.RateDuration = 250 * time.Millisecond
	}

	res := ProbeResult{
		ConfiguredLossAtoB: cfg.AtoB.Loss,
		ConfiguredLossBtoA: cfg.BtoA.Loss,
		ConfiguredRate:     cfg.AtoB.RateBitsPerSec,
		ConfiguredRTT: cfg.AtoB.Delay + cfg.BtoA.Delay + (cfg.AtoB.Jitter+cfg.BtoA.Jitter)/2 +
			SerializationTime(o.PacketSize, cfg.AtoB.RateBitsPerSec) +
			SerializationTime(o.PacketSize, cfg.BtoA.RateBitsPerSec),
	}

	srvConn, err := l.ListenUDP(B, netip.AddrPortFrom(l.AddrB(), 0).String())
	if err != nil {
		return res, err
	}
	cliConn, err := l.ListenUDP(A, netip.AddrPortFrom(l.AddrA(), 0).String())
	if err != nil {
		srvConn.Close()
		return res, err
	}
	setSocketBuffers(srvConn, 8<<20)
	setSocketBuffers(cliConn, 8<<20)
	srvAddr := srvConn.LocalAddr().(*net.UDPAddr).AddrPort()

	base := time.Now()
	srv := &probeServer{}
	cli := &probeClient{rtts: make([]time.Duration, 0, o.RTTPackets)}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); srv.run(srvConn, mtu) }()
	go func() { defer wg.Done(); cli.run(cliConn, base, mtu) }()
	defer func() {
		srvConn.Close()
		cliConn.Close()
		wg.Wait()
	}()

	buf := make([]byte, mtu)
	send := func(phase byte, seq int, size int) {
		p := buf[:size-ipUDPHdr]
		p[0] = 'Q'
		p[1] = phase
		binary.BigEndian.PutUint32(p[2:], uint32(seq))
		binary.BigEndian.PutUint64(p[6:], uint64(time.Since(base)))
		_, _ = cliConn.WriteToUDPAddrPort(p, srvAddr)
	}
	maxOneWay := func(d Direction) time.Duration { return d.Delay + d.Jitter }
	ser := func(d Direction, size int) time.Duration {
		return time.Duration(d.queueLimit(mtu)) * SerializationTime(size, d.RateBitsPerSec)
	}
	drain := maxOneWay(cfg.AtoB) + maxOneWay(cfg.BtoA) + 30*time.Millisecond

	// (a) RTT: a slow train of small packets.
	if err := pace(ctx, o.RTTPackets, float64(time.Second)/float64(o.RTTInterval), func(i int) {
		send(phaseRTT, i, o.PacketSize)
	}); err != nil {
		return res, err
	}
	if err := sleepCtx(ctx, drain+ser(cfg.AtoB, o.PacketSize)+ser(cfg.BtoA, o.PacketSize)); err != nil {
		return res, err
	}
	cli.mu.Lock()
	rtts := slices.Clone(cli.rtts)
	cli.mu.Unlock()
	res.RTTSent, res.RTTEchoed = o.RTTPackets, len(rtts)
	if len(rtts) > 0 {
		slices.Sort(rtts)
		res.RTTMin = rtts[0]
		res.RTTMedian = rtts[len(rtts)/2]
		if len(rtts)%2 == 0 {
			res.RTTMedian = (rtts[len(rtts)/2-1] + rtts[len(rtts)/2]) / 2
		}
	}

	// (b) Loss: a fast train paced below both directions' rates. Should the
	// host delay the sender, echo server or forwarder, packets reach the
	// queue in a burst and some are queue-dropped: those are counted by the
	// link and excluded from the loss figures (the loss model decided to
	// keep them); if they exceed 1% of the train, it is repeated at half
	// the rate.
	pps := float64(o.MaxPPS)
	for _, d := range []Direction{cfg.AtoB, cfg.BtoA} {
		if d.RateBitsPerSec > 0 {
			pps = min(pps, 0.5*float64(d.RateBitsPerSec)/float64(8*o.PacketSize))
		}
	}
	for attempt := 1; attempt <= o.Attempts; attempt, pps = attempt+1, pps/2 {
		res.LossAttempts, res.LossPPS = attempt, pps
		srv.reset()
		cli.reset()
		before := l.Stats()
		if err := pace(ctx, o.ProbePackets, pps, func(i int) {
			send(phaseLoss, i, o.PacketSize)
		}); err != nil {
			return res, err
		}
		if err := sleepCtx(ctx, drain+ser(cfg.AtoB, o.PacketSize)+ser(cfg.BtoA, o.PacketSize)); err != nil {
			return res, err
		}
		after := l.Stats()
		qdAB := int(after.AtoB.DroppedQueue - before.AtoB.DroppedQueue)
		qdBA := int(after.BtoA.DroppedQueue - before.BtoA.DroppedQueue)
		res.QueueDropsDuringLoss = uint64(qdAB + qdBA)
		srv.mu.Lock()
		res.LossReceivedB = srv.recv[phaseLoss]
		echoed := srv.echoed[phaseLoss]
		srv.mu.Unlock()
		cli.mu.Lock()
		res.LossReceivedA = cli.recv[phaseLoss]
		cli.mu.Unlock()
		res.LossSent = o.ProbePackets
		res.LossAtoB = float64(res.LossSent-res.LossReceivedB-qdAB) / float64(res.LossSent)
		res.LossBtoA = 0
		if echoed > 0 {
			res.LossBtoA = float64(echoed-res.LossReceivedA-qdBA) / float64(echoed)
		}
		if !res.lossDisturbed() {
			break
		}
		l.log.Debug().Uint64("queueDrops", res.QueueDropsDuringLoss).Float64("pps", pps).Msg("linkemu: probe loss train disturbed; retrying slower")
	}

	// (c) Rate: overdrive A->B with MTU-sized packets, measure at B. The
	// measurement is valid only if the bottleneck never went idle during
	// the burst (the sender kept up); otherwise it is repeated.
	if !o.SkipRate && cfg.AtoB.RateBitsPerSec > 0 && cfg.AtoB.Loss < 0.5 {
		rate := float64(cfg.AtoB.RateBitsPerSec)
		over := min(1.5/(1-cfg.AtoB.Loss), 3)
		ratePPS := over * rate / float64(8*mtu)
		n := max(int(ratePPS*o.RateDuration.Seconds()), 50)
		for attempt := 1; attempt <= o.Attempts; attempt++ {
			res.RateAttempts = attempt
			srv.reset()
			srv.mu.Lock()
			srv.arrivals = make([]time.Time, 0, n)
			srv.mu.Unlock()
			idle0 := l.ctr[0].idleArrivals.Load()
			if err := pace(ctx, n, ratePPS, func(i int) { send(phaseRate, i, mtu) }); err != nil {
				return res, err
			}
			if err := sleepCtx(ctx, drain+ser(cfg.AtoB, mtu)); err != nil {
				return res, err
			}
			res.RateIdle = l.ctr[0].idleArrivals.Load() - idle0 - 1
			srv.mu.Lock()
			arr := srv.arrivals
			srv.mu.Unlock()
			res.RatePackets = len(arr)
			res.Rate = 0
			if k := len(arr) / 10; len(arr)-k >= 3 {
				if span := arr[len(arr)-1].Sub(arr[k]); span > 0 {
					res.Rate = float64((len(arr)-1-k)*mtu*8) / span.Seconds()
				}
			}
			if res.RateIdle == 0 {
				break
			}
			l.log.Debug().Uint64("idle", res.RateIdle).Msg("linkemu: probe rate burst did not keep the link busy; retrying")
		}
	}
	res.Elapsed = time.Since(started)
	return res, nil
}

func (s *probeServer) reset() {
	s.mu.Lock()
	s.recv, s.echoed = [4]int{}, [4]int{}
	s.mu.Unlock()
}

func (c *probeClient) reset() {
	c.mu.Lock()
	c.recv = [4]int{}
	c.mu.Unlock()
}

func (s *probeServer) run(c *net.UDPConn, mtu int) {
	buf := make([]byte, mtu)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		now := time.Now()
		if n < probeHdr || buf[0] != 'Q' || buf[1] < phaseRTT || buf[1] > phaseRate {
			continue
		}
		ph := buf[1]
		if ph == phaseRate {
			s.mu.Lock()
			s.recv[ph]++
			s.arrivals = append(s.arrivals, now)
			s.mu.Unlock()
			continue
		}
		_, werr := c.WriteToUDPAddrPort(buf[:n], from)
		s.mu.Lock()
		s.recv[ph]++
		if werr == nil {
			s.echoed[ph]++
		}
		s.mu.Unlock()
	}
}

func (c *probeClient) run(conn *net.UDPConn, base time.Time, mtu int) {
	buf := make([]byte, mtu)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		now := time.Since(base)
		if n < probeHdr || buf[0] != 'Q' || buf[1] < phaseRTT || buf[1] > phaseRate {
			continue
		}
		ph := buf[1]
		c.mu.Lock()
		c.recv[ph]++
		if ph == phaseRTT {
			sent := time.Duration(binary.BigEndian.Uint64(buf[6:]))
			c.rtts = append(c.rtts, now-sent)
		}
		c.mu.Unlock()
	}
}

// pace calls send(i) for i in [0,n) at pps packets per second, with a
// fine-grained sleeper so the train is smooth rather than bursty.
func pace(ctx context.Context, n int, pps float64, send func(i int)) error {
	sl, err := newSleeper()
	if err != nil {
		return err
	}
	defer sl.close()
	interval := float64(time.Second) / pps
	start := time.Now()
	for i := 0; i < n; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		target := start.Add(time.Duration(float64(i) * interval))
		// Sleep only when ahead by a coarse step: micro-bursts of a few
		// packets are harmless, a syscall-heavy sleep per packet is not.
		if d := time.Until(target); d > paceStep {
			if err := sl.sleep(d); err != nil {
				return err
			}
		}
		// Never catch up with a burst after falling behind (e.g. the host
		// was busy): shift the schedule instead.
		if late := -time.Until(target); late > paceStep {
			start = start.Add(late)
		}
		send(i)
	}
	return nil
}

// paceStep is the pacer's sleep granularity.
const paceStep = 250 * time.Microsecond

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MetricError is one metric out of tolerance.
type MetricError struct {
	Metric     string
	Configured float64
	Measured   float64
	Tolerance  string
}

// FidelityError lists the metrics a probe found out of tolerance.
type FidelityError struct {
	Failures []MetricError
}

func (e *FidelityError) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = fmt.Sprintf("%s measured %.6g, configured %.6g (tolerance %s)", f.Metric, f.Measured, f.Configured, f.Tolerance)
	}
	return "linkemu: link fidelity out of tolerance: " + strings.Join(parts, "; ")
}

// RTTTolerance, RateTolerance and LossTolerance are the relative tolerances
// of Check. RTTFloor is an absolute RTT tolerance for very short RTTs
// (kernel and scheduling overhead).
const (
	RTTTolerance  = 0.10
	RateTolerance = 0.10
	LossTolerance = 0.20
	RTTFloor      = 200 * time.Microsecond
)

// Check returns nil if every measured figure is within tolerance of the
// configured one, else a *FidelityError: RTT (median) and rate within 10%
// relative; loss within 20% relative when configured > 0, exactly 0
// otherwise; queue drops during the loss train at most 1% of it; the
// bottleneck never idle during the rate burst. The rate is judged
// only when the A->B rate is limited and was measured.
func (r ProbeResult) Check() error {
	var fe FidelityError
	tol := max(time.Duration(RTTTolerance*float64(r.ConfiguredRTT)), RTTFloor)
	if r.RTTEchoed == 0 || absDur(r.RTTMedian-r.ConfiguredRTT) > tol {
		fe.Failures = append(fe.Failures, MetricError{"rtt_ms", ms(r.ConfiguredRTT), ms(r.RTTMedian), fmt.Sprintf("±%.3g ms", ms(tol))})
	}
	checkLoss := func(name string, cfg, got float64) {
		if cfg == 0 {
			if got != 0 {
				fe.Failures = append(fe.Failures, MetricError{name, 0, got, "exactly 0"})
			}
			return
		}
		if math.Abs(got-cfg) > LossTolerance*cfg {
			fe.Failures = append(fe.Failures, MetricError{name, cfg, got, "±20% relative"})
		}
	}
	if r.LossSent > 0 {
		checkLoss("loss_a_to_b", r.ConfiguredLossAtoB, r.LossAtoB)
		checkLoss("loss_b_to_a", r.ConfiguredLossBtoA, r.LossBtoA)
	}
	if r.lossDisturbed() {
		fe.Failures = append(fe.Failures, MetricError{"queue_drops_during_loss_probe", 0, float64(r.QueueDropsDuringLoss), "at most 1% of the train (host too busy)"})
	}
	if r.RateIdle > 0 {
		fe.Failures = append(fe.Failures, MetricError{"rate_burst_idle_periods", 0, float64(r.RateIdle), "exactly 0 (host too busy to saturate the link)"})
	}
	if r.ConfiguredRate > 0 && r.RateAttempts > 0 {
		c := float64(r.ConfiguredRate)
		if math.Abs(r.Rate-c) > RateTolerance*c {
			fe.Failures = append(fe.Failures, MetricError{"rate_bps", c, r.Rate, "±10% relative"})
		}
	}
	if len(fe.Failures) > 0 {
		return &fe
	}
	return nil
}

func (r ProbeResult) lossDisturbed() bool {
	return r.QueueDropsDuringLoss*100 > uint64(r.LossSent)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// String formats the result as one line.
func (r ProbeResult) String() string {
	return fmt.Sprintf("rtt median %v min %v (configured %v, %d/%d echoed); loss A->B %.4f B->A %.4f (configured %.4f/%.4f, %d sent at %.0f pps, %d queue drops, %d attempts); rate %.2f Mbit/s (configured %.2f, %d pkts, %d idle, %d attempts); took %v",
		r.RTTMedian, r.RTTMin, r.ConfiguredRTT, r.RTTEchoed, r.RTTSent,
		r.LossAtoB, r.LossBtoA, r.ConfiguredLossAtoB, r.ConfiguredLossBtoA, r.LossSent, r.LossPPS, r.QueueDropsDuringLoss, r.LossAttempts,
		r.Rate/1e6, float64(r.ConfiguredRate)/1e6, r.RatePackets, r.RateIdle, r.RateAttempts, r.Elapsed.Round(time.Millisecond))
}
