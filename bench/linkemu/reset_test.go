package linkemu

import (
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestResetLossReplaysPattern: after ResetLoss the pipe drops the same
// packet indexes as it did from its start, whatever it consumed before.
func TestResetLossReplaysPattern(t *testing.T) {
	in, out := newFakeTUN(), newFakeTUN()
	var ctr dirCounters
	pool := &sync.Pool{New: func() any { return &packet{b: make([]byte, 1600)} }}
	d := Direction{Loss: 0.2, BurstLen: 3, Delay: time.Millisecond, QueuePackets: 10000}
	p, err := newPipe("test", d, 1500, 9, streamLossAtoB, streamJitAtoB, in, out, &ctr, pool, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.readLoop() }()
	go func() { defer wg.Done(); p.writeLoop() }()
	l := &Link{pipes: [2]*pipe{p, nil}}

	const n = 400
	round := func(tag byte, count int) []int {
		before := ctr.snapshot()
		for i := range count {
			in.in <- []byte{tag, byte(i >> 8), byte(i)}
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			s := ctr.snapshot()
			if s.PacketsIn == before.PacketsIn+uint64(count) && s.InFlight() == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pipe did not drain: %+v", s)
			}
			time.Sleep(time.Millisecond)
		}
		var kept []int
		for _, pk := range out.snapshot() {
			if pk[0] == tag {
				kept = append(kept, int(pk[1])<<8|int(pk[2]))
			}
		}
		return kept
	}
	first := round(1, n)
	_ = round(2, 137) // consume part of the sequence
	l.ResetLoss()
	again := round(3, n)
	p.stop()
	close(in.closed)
	wg.Wait()

	if len(first) == n || len(first) == 0 {
		t.Fatalf("kept %d of %d: loss model not exercised", len(first), n)
	}
	if len(first) != len(again) {
		t.Fatalf("after reset kept %d, first run kept %d", len(again), len(first))
	}
	for i := range first {
		if first[i] != again[i] {
			t.Fatalf("position %d: kept packet %d after reset, %d at first", i, again[i], first[i])
		}
	}
}

func (f *fakeTUN) snapshot() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.out...)
}
