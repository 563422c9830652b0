package linkemu

import (
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestBernoulliRate(t *testing.T) {
	const n, p = 100000, 0.05
	m := NewBernoulli(p, 1, streamLossAtoB)
	drops := 0
	for range n {
		if m.Drop() {
			drops++
		}
	}
	sigma := math.Sqrt(n * p * (1 - p))
	if math.Abs(float64(drops)-n*p) > 4*sigma {
		t.Fatalf("Bernoulli(%v): %d drops in %d, want %v±%.0f", p, drops, n, n*p, 4*sigma)
	}
}

func TestGilbertElliottLossAndBurst(t *testing.T) {
	for _, tc := range []struct{ loss, burst float64 }{{0.02, 3}, {0.05, 8}, {0.3, 2}} {
		const n = 1000000
		m := NewGilbertElliott(tc.loss, tc.burst, 7, streamLossBtoA)
		drops, bursts, run := 0, 0, 0
		for range n {
			if m.Drop() {
				drops++
				run++
			} else if run > 0 {
				bursts++
				run = 0
			}
		}
		if run > 0 {
			bursts++
		}
		gotLoss := float64(drops) / n
		gotBurst := float64(drops) / float64(bursts)
		if math.Abs(gotLoss-tc.loss) > 0.1*tc.loss {
			t.Errorf("GE(%v,%v): loss %.4f", tc.loss, tc.burst, gotLoss)
		}
		if math.Abs(gotBurst-tc.burst) > 0.1*tc.burst {
			t.Errorf("GE(%v,%v): mean burst %.3f", tc.loss, tc.burst, gotBurst)
		}
	}
}

func TestLossModelSelectionAndDeterminism(t *testing.T) {
	if _, ok := NewLossModel(Direction{}, 1, 1).(noLoss); !ok {
		t.Error("Loss 0 should select noLoss")
	}
	if _, ok := NewLossModel(Direction{Loss: 1}, 1, 1).(allLoss); !ok {
		t.Error("Loss 1 should select allLoss")
	}
	if _, ok := NewLossModel(Direction{Loss: 0.1, BurstLen: 1}, 1, 1).(*Bernoulli); !ok {
		t.Error("BurstLen 1 should select Bernoulli")
	}
	if _, ok := NewLossModel(Direction{Loss: 0.1, BurstLen: 2}, 1, 1).(*GilbertElliott); !ok {
		t.Error("BurstLen 2 should select GilbertElliott")
	}
	for _, d := range []Direction{{Loss: 0.1}, {Loss: 0.1, BurstLen: 4}} {
		seq := func(seed int64, stream uint64) []bool {
			m := NewLossModel(d, seed, stream)
			out := make([]bool, 10000)
			for i := range out {
				out[i] = m.Drop()
			}
			return out
		}
		a, b := seq(99, streamLossAtoB), seq(99, streamLossAtoB)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%+v: same seed differs at packet %d", d, i)
			}
		}
		same := true
		for i, c := range seq(100, streamLossAtoB) {
			same = same && c == a[i]
		}
		other := true
		for i, c := range seq(99, streamLossBtoA) {
			other = other && c == a[i]
		}
		if same || other {
			t.Errorf("%+v: other seed or direction gives the same decisions", d)
		}
	}
}

func TestShaperSerialization(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewShaper(8_000_000, 100) // 1000 bytes = 1 ms
	for i := 1; i <= 3; i++ {
		d, ok := s.Admit(t0, 1000)
		if !ok || d != t0.Add(time.Duration(i)*time.Millisecond) {
			t.Fatalf("packet %d: depart %v ok %v", i, d.Sub(t0), ok)
		}
	}
	if got := s.Len(t0.Add(1500 * time.Microsecond)); got != 2 {
		t.Fatalf("Len = %d, want 2", got)
	}
	// After the queue drained, service starts at arrival.
	t1 := t0.Add(10 * time.Millisecond)
	if d, _ := s.Admit(t1, 500); d != t1.Add(500*time.Microsecond) {
		t.Fatalf("idle admit departs at %v", d.Sub(t1))
	}
	if got := SerializationTime(1500, 100_000_000); got != 120*time.Microsecond {
		t.Fatalf("SerializationTime = %v", got)
	}
	// Remainders carry: 1000 packets of 1500 B at 7 Mbit/s.
	s = NewShaper(7_000_000, 2000)
	var last time.Time
	for range 1000 {
		last, _ = s.Admit(t0, 1500)
	}
	want := time.Duration(1000 * 1500 * 8 * int64(time.Second) / 7_000_000)
	if got := last.Sub(t0); got != want {
		t.Fatalf("1000 packets take %v, want %v", got, want)
	}
	// Unlimited.
	s = NewShaper(0, 1)
	for range 10 {
		if d, ok := s.Admit(t0, 1500); !ok || d != t0 {
			t.Fatal("unlimited shaper must not delay or drop")
		}
	}
}

func TestShaperDropTail(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := NewShaper(8_000_000, 3)
	for i := range 3 {
		if _, ok := s.Admit(t0, 1000); !ok {
			t.Fatalf("packet %d dropped below the limit", i)
		}
	}
	if _, ok := s.Admit(t0, 1000); ok {
		t.Fatal("4th packet admitted beyond the limit of 3")
	}
	if _, ok := s.Admit(t0.Add(999*time.Microsecond), 1000); ok {
		t.Fatal("admitted before the first packet left")
	}
	d, ok := s.Admit(t0.Add(time.Millisecond), 1000)
	if !ok || d != t0.Add(4*time.Millisecond) {
		t.Fatalf("after one departure: ok %v depart %v", ok, d.Sub(t0))
	}
}

func TestDefaultQueueLimit(t *testing.T) {
	d := Direction{RateBitsPerSec: 100_000_000, Delay: 25 * time.Millisecond}
	if got := d.queueLimit(1500); got != 417 { // 1e8*0.05/12000 = 416.7
		t.Errorf("BDP queue = %d, want 417", got)
	}
	if got := (Direction{RateBitsPerSec: 1_000_000, Delay: time.Millisecond}).queueLimit(1500); got != 16 {
		t.Errorf("small BDP queue = %d, want 16", got)
	}
	if got := (Direction{QueuePackets: 5}).queueLimit(1500); got != 5 {
		t.Errorf("explicit queue = %d", got)
	}
}

func TestDelayLineOrderWithJitter(t *testing.T) {
	t0 := time.Unix(0, 0)
	const delay, jitter = 10 * time.Millisecond, 5 * time.Millisecond
	d := NewDelayLine[int](delay, jitter, 3, streamJitAtoB)
	var prev time.Time
	sawJitter := false
	for i := range 1000 {
		at := t0.Add(time.Duration(i) * 100 * time.Microsecond) // closer than the jitter
		due := d.Push(at, i)
		if due.Before(at.Add(delay)) || due.Before(prev) {
			t.Fatalf("item %d due %v, entered %v, previous %v", i, due, at, prev)
		}
		if due.After(at.Add(delay+jitter)) && due != prev {
			t.Fatalf("item %d due %v beyond delay+jitter", i, due.Sub(at))
		}
		if due.Sub(at) > delay {
			sawJitter = true
		}
		prev = due
	}
	if !sawJitter {
		t.Fatal("no jitter applied")
	}
	if _, _, ok := d.Pop(t0.Add(delay - 1)); ok {
		t.Fatal("popped before due")
	}
	next := 0
	for now := t0; d.Len() > 0; now = now.Add(time.Millisecond) {
		for {
			v, due, ok := d.Pop(now)
			if !ok {
				break
			}
			if due.After(now) || v != next {
				t.Fatalf("popped %d (want %d) due %v at %v", v, next, due, now)
			}
			next++
		}
	}
	if next != 1000 {
		t.Fatalf("popped %d items", next)
	}
	// Without jitter the due time is exact.
	d2 := NewDelayLine[int](delay, 0, 0, 0)
	if due := d2.Push(t0, 1); due != t0.Add(delay) {
		t.Fatalf("due %v", due.Sub(t0))
	}
}

func TestConfigValidate(t *testing.T) {
	c := Symmetric(0.01, 0, 40*time.Millisecond, 1e7, 0, 1)
	if c.AtoB.Delay != 20*time.Millisecond || c.BtoA != c.AtoB || c.Seed != 1 {
		t.Fatalf("Symmetric: %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Config{
		{AtoB: Direction{Loss: -0.1}},
		{BtoA: Direction{Loss: 1.5}},
		{AtoB: Direction{Delay: -1}},
		{AtoB: Direction{Loss: 0.6, BurstLen: 1.2}}, // P(Good->Bad) > 1
		{MTU: 100},
	}
	for _, b := range bad {
		var ce *ConfigError
		if err := b.validate(); !errors.As(err, &ce) {
			t.Errorf("%+v: got %v, want *ConfigError", b, err)
		}
	}
}

func TestCheck(t *testing.T) {
	good := ProbeResult{
		ConfiguredRTT: 20 * time.Millisecond, RTTMedian: 21 * time.Millisecond, RTTEchoed: 100,
		ConfiguredLossAtoB: 0.02, LossAtoB: 0.023, ConfiguredLossBtoA: 0, LossBtoA: 0, LossSent: 1000,
		ConfiguredRate: 1e8, Rate: 0.95e8, RateAttempts: 1,
	}
	if err := good.Check(); err != nil {
		t.Fatalf("good result: %v", err)
	}
	bad := good
	bad.RTTMedian = 23 * time.Millisecond
	bad.LossAtoB = 0.025
	bad.LossBtoA = 0.001
	bad.Rate = 0.8e8
	var fe *FidelityError
	if err := bad.Check(); !errors.As(err, &fe) || len(fe.Failures) != 4 {
		t.Fatalf("bad result: %v", err)
	}
}

func TestEnvErrors(t *testing.T) {
	e := &EnvError{Kind: ErrNotPermitted, Detail: "uid 1000 lacks CAP_NET_ADMIN"}
	if !errors.Is(e, ErrNotPermitted) || errors.Is(e, ErrNoTUN) {
		t.Fatal("errors.Is on EnvError")
	}
	for _, s := range []string{"linkemu: ", "CAP_NET_ADMIN", "run as root"} {
		if !strings.Contains(e.Error(), s) {
			t.Errorf("%q lacks %q", e.Error(), s)
		}
	}
	if !strings.Contains(ErrNoTUN.Error(), "/dev/net/tun") {
		t.Error("ErrNoTUN does not name /dev/net/tun")
	}
}

// fakeTUN feeds packets to a pipe and records what it writes, so the I/O
// loop can be tested without root.
type fakeTUN struct {
	in     chan []byte
	closed chan struct{}
	mu     sync.Mutex
	out    [][]byte
	at     []time.Time
}

func newFakeTUN() *fakeTUN {
	return &fakeTUN{in: make(chan []byte, 1024), closed: make(chan struct{})}
}

func (f *fakeTUN) Read(b []byte) (int, error) {
	select {
	case p := <-f.in:
		return copy(b, p), nil
	case <-f.closed:
		return 0, os.ErrClosed
	}
}

func (f *fakeTUN) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out = append(f.out, append([]byte(nil), b...))
	f.at = append(f.at, time.Now())
	return len(b), nil
}

func TestPipeInMemory(t *testing.T) {
	in, out := newFakeTUN(), newFakeTUN()
	var ctr dirCounters
	pool := &sync.Pool{New: func() any { return &packet{b: make([]byte, 1600)} }}
	d := Direction{Loss: 0.1, Delay: 5 * time.Millisecond, Jitter: time.Millisecond, RateBitsPerSec: 100_000_000, QueuePackets: 1000}
	p, err := newPipe("test", d, 1500, 5, streamLossAtoB, streamJitAtoB, in, out, &ctr, pool, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.readLoop() }()
	go func() { defer wg.Done(); p.writeLoop() }()

	const n = 500
	sent := make([]time.Time, n)
	for i := range n {
		pk := make([]byte, 100)
		pk[0], pk[1] = byte(i>>8), byte(i)
		sent[i] = time.Now()
		in.in <- pk
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // some idle periods
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := ctr.snapshot()
		if s.PacketsIn == n && s.InFlight() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pipe did not drain: %+v", s)
		}
		time.Sleep(time.Millisecond)
	}
	p.stop()
	close(in.closed)
	wg.Wait()

	s := ctr.snapshot()
	if s.Forwarded+s.DroppedLoss != n || s.DroppedQueue != 0 || s.BytesForwarded != 100*s.Forwarded {
		t.Fatalf("counters %+v", s)
	}
	// Same seed, same drops.
	m := NewLossModel(d, 5, streamLossAtoB)
	var want []int
	for i := range n {
		if !m.Drop() {
			want = append(want, i)
		}
	}
	if len(want) != len(out.out) {
		t.Fatalf("forwarded %d, loss model keeps %d", len(out.out), len(want))
	}
	for j, pk := range out.out {
		idx := int(pk[0])<<8 | int(pk[1])
		if idx != want[j] {
			t.Fatalf("position %d: packet %d, want %d (order or loss pattern broken)", j, idx, want[j])
		}
		if lat := out.at[j].Sub(sent[idx]); lat < d.Delay-deliverEarly {
			t.Fatalf("packet %d delivered after %v < delay %v", idx, lat, d.Delay)
		}
	}
}
