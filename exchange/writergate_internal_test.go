package exchange

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedPair is state the writer changes in two steps inside the gate: a
// closer that ever sees the two differ got in while the writer was in
// its fast path.
type gatedPair struct {
	gate writerGate
	mu   sync.Mutex // the locked path, as wmu
	a, b uint64
}

// TestWriterGateExcludes races a writer, appending through the gate (or
// the lock when it is closed), with goroutines that close it to read the
// writer's state. Built without -race on linux/amd64 this is the
// plain-store handshake with membarrier; under -race, the atomic one,
// which the race detector checks as well.
func TestWriterGateExcludes(t *testing.T) {
	if !fastPathAvailable() {
		t.Skip("membarrier refused: the gate stays shut, and every write is locked")
	}
	mode := map[bool]string{false: "atomic", true: "plain"}[plainStores]
	t.Run(mode, func(t *testing.T) {
		var g gatedPair
		stop := make(chan struct{})
		var fast, locked, closes atomic.Int64
		var wg sync.WaitGroup
		// untilStopped runs step until stop is closed.
		untilStopped := func(step func()) {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						step()
					}
				}
			})
		}
		untilStopped(func() {
			for range 1000 {
				if g.gate.enter() {
					g.a++
					g.b++
					g.gate.leave()
					fast.Add(1)
					continue
				}
				g.mu.Lock()
				g.a++
				g.b++
				g.mu.Unlock()
				locked.Add(1)
			}
		})
		var torn atomic.Int64
		for range 2 {
			untilStopped(func() {
				g.mu.Lock()
				g.gate.close()
				if g.a != g.b {
					torn.Add(1)
				}
				g.gate.reopen()
				g.mu.Unlock()
				closes.Add(1)
			})
		}
		// Run until both paths were taken many times, or 5 s.
		deadline := time.After(5 * time.Second)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
	wait:
		for fast.Load() < 1e6 || locked.Load() < 1e3 || closes.Load() < 1e4 {
			select {
			case <-deadline:
				break wait
			case <-tick.C:
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("%d fast, %d locked appends, %d closes", fast.Load(), locked.Load(), closes.Load())
		if n := torn.Load(); n > 0 {
			t.Fatalf("a closer saw the writer's state torn %d times", n)
		}
		if fast.Load() == 0 || locked.Load() == 0 || closes.Load() == 0 {
			t.Fatalf("a path was never taken: %d fast, %d locked, %d closes", fast.Load(), locked.Load(), closes.Load())
		}
		if g.a != uint64(fast.Load()+locked.Load()) {
			t.Fatalf("%d appends counted, %d made", g.a, fast.Load()+locked.Load())
		}
	})
}

// TestWriterGateShut: once shut, the gate stays closed, also after a
// closer reopens it.
func TestWriterGateShut(t *testing.T) {
	var g writerGate
	if !g.enter() {
		t.Fatal("a new gate is closed")
	}
	g.leave()
	g.close()
	if g.enter() {
		t.Fatal("a closed gate let the writer in")
	}
	g.shut()
	g.reopen()
	if g.enter() {
		t.Fatal("a shut gate let the writer in after reopen")
	}
}

// BenchmarkWriterFastPath is the writer's side alone: records appended to
// 100 subpartitions whose finished segments a second goroutine takes and
// releases without reading them.
func BenchmarkWriterFastPath(b *testing.B) {
	ctx := context.Background()
	env, err := NewEnvironment(ctx, Config{NetworkMemory: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	const subs = 100
	p, err := env.CreatePartition(PartitionConfig{Subpartitions: subs, BufferTimeout: FlushFullBuffersOnly})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Release()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			took := false
			for i := range p.subs {
				if r := p.subs[i].poll(true); r.ok {
					r.buf.Release()
					took = true
				}
			}
			if !took {
				select {
				case <-stop:
					return
				default:
					time.Sleep(50 * time.Microsecond)
				}
			}
		}
	})
	w := NewRecordWriter(p, &RoundRobin{})
	rec := make([]byte, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := w.Emit(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
}
