package workload

import (
	"encoding/binary"
	"fmt"
	"testing"
)

// harness feeds one writer's records into the verifiers of R gates as if
// the exchange delivered them, letting a test tamper with the stream.
type harness struct {
	t      *testing.T
	enc    *Encoder
	gates  []*GateVerifier
	r      int
	clock  *Clock
	stream [][][]byte // per sub: records in delivery order
}

func newHarness(t *testing.T, size, r int, sel string) *harness {
	return newHarnessSampling(t, size, r, sel, SampleEvery(size, 0, 0))
}

func newHarnessSampling(t *testing.T, size, r int, sel string, sample int) *harness {
	return newHarnessMode(t, size, r, sel, sample, VerifyFull)
}

func newHarnessMode(t *testing.T, size, r int, sel string, sample int, mode string) *harness {
	clock := NewClock()
	h := &harness{t: t, r: r, clock: clock, enc: NewEncoder(0, r, sel, size, sample, clock), stream: make([][][]byte, r)}
	h.enc.SetVerify(mode)
	hello := Hello{Writer: 0, Writers: 1, Readers: r, Selector: sel, RecordSize: size, SampleEvery: sample, ClockAbs: clock.Abs, BootID: clock.BootID,
		ChecksumEvery: ChecksumEvery(mode)}
	for s := range r {
		g := NewGateVerifier(s, 1, r, clock)
		if err := g.Event(0, hello.Encode()); err != nil {
			t.Fatal(err)
		}
		h.gates = append(h.gates, g)
	}
	return h
}

func (h *harness) produce(n int) {
	for range n {
		rec, sub := h.enc.Next()
		c := append([]byte(nil), rec...)
		if sub < 0 {
			for s := range h.r {
				h.stream[s] = append(h.stream[s], c)
			}
		} else {
			h.stream[sub] = append(h.stream[sub], c)
		}
	}
}

func (h *harness) deliver() Stats {
	ends := EndEvents(0, h.enc.SentCounts(), 100) // small chunks: several events
	var total Stats
	for s, g := range h.gates {
		for _, rec := range h.stream[s] {
			g.Record(0, rec)
		}
		for _, ev := range ends {
			if err := g.Event(0, ev); err != nil {
				h.t.Fatal(err)
			}
		}
		g.EndOfData(0)
		st := g.Stats()
		total.Merge(&st)
	}
	return total
}

func TestCleanStreams(t *testing.T) {
	for _, size := range []int{8, 12, 31, 32, 64, 1000} {
		for _, sel := range []string{RoundRobin, Hash, Broadcast} {
			t.Run(fmt.Sprintf("%d/%s", size, sel), func(t *testing.T) {
				sample := 16
				if size >= FullSize {
					sample = 1 // every record measured
				}
				h := newHarnessSampling(t, size, 7, sel, sample)
				h.produce(5000)
				st := h.deliver()
				want := int64(5000)
				if sel == Broadcast {
					want *= 7
				}
				if st.Records != want || st.Sent != want {
					t.Fatalf("records %d sent %d, want %d", st.Records, st.Sent, want)
				}
				if st.Lost+st.Duplicated+st.Reordered+st.ChecksumFailures+st.Invalid != 0 || st.Incomplete != 0 {
					t.Fatalf("clean stream reported %+v", st)
				}
				if st.Hist.Count() == 0 {
					t.Fatal("no latency samples")
				}
				if sample == 1 && st.Hist.Count() != uint64(want) {
					t.Fatalf("%d latency samples, want %d", st.Hist.Count(), want)
				}
				if sample == 16 && sel != Broadcast && st.Hist.Count() != 5000/16+1 {
					t.Fatalf("%d latency samples, want %d", st.Hist.Count(), 5000/16+1)
				}
				if sel == Hash {
					used := 0
					for s := range h.stream {
						if len(h.stream[s]) > 0 {
							used++
						}
					}
					if used < 7 {
						t.Fatalf("hash used %d of 7 subpartitions", used)
					}
				}
			})
		}
	}
}

func TestDetectsAnomalies(t *testing.T) {
	for _, size := range []int{12, 64} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			check := func(name string, tamper func(s [][]byte) [][]byte, want func(Stats) bool) {
				t.Run(name, func(t *testing.T) {
					h := newHarness(t, size, 2, RoundRobin)
					h.produce(200)
					h.stream[1] = tamper(h.stream[1])
					st := h.deliver()
					if !want(st) {
						t.Fatalf("stats %+v", st)
					}
				})
			}
			check("lost-middle", func(s [][]byte) [][]byte { return append(s[:10:10], s[11:]...) },
				func(st Stats) bool { return st.Lost == 1 && st.Duplicated == 0 && st.Reordered == 0 })
			check("lost-tail", func(s [][]byte) [][]byte { return s[:len(s)-3] },
				func(st Stats) bool { return st.Lost == 3 && st.Duplicated == 0 && st.Reordered == 0 })
			check("duplicated", func(s [][]byte) [][]byte {
				return append(append(s[:20:20], s[19]), s[20:]...)
			}, func(st Stats) bool { return st.Duplicated == 1 && st.Lost == 0 && st.Reordered == 0 })
			check("reordered", func(s [][]byte) [][]byte {
				s[30], s[31] = s[31], s[30]
				return s
			}, func(st Stats) bool { return st.Reordered == 1 && st.Lost == 0 && st.Duplicated == 0 })
			check("reordered-far", func(s [][]byte) [][]byte {
				late := s[40]
				s = append(s[:40:40], s[41:]...)
				return append(s, late)
			}, func(st Stats) bool { return st.Reordered == 1 && st.Lost == 0 && st.Duplicated == 0 })
			check("dup-of-old", func(s [][]byte) [][]byte { return append(s, s[5]) },
				func(st Stats) bool { return st.Duplicated == 1 && st.Lost == 0 })
			check("corrupt-filler", func(s [][]byte) [][]byte {
				s[50] = append([]byte(nil), s[50]...)
				s[50][len(s[50])-9]++ // filler byte in both formats
				return s
			}, func(st Stats) bool { return st.ChecksumFailures == 1 && st.Lost == 1 })
			check("corrupt-sequence", func(s [][]byte) [][]byte {
				s[60] = append([]byte(nil), s[60]...)
				if s[60][0]&1 == 0 { // keep it off the sampled records' path
					s[60][0] ^= 2
				} else {
					s[60][0] ^= 4
				}
				return s
			}, func(st Stats) bool {
				// full: checksum; compact: check word (record 60 of sub 1 is
				// writer record 121, not sampled)
				return st.ChecksumFailures == 1 && st.Lost == 1
			})
		})
	}
}

func TestMisroutedRecordIsCaught(t *testing.T) {
	for _, size := range []int{8, 64} {
		h := newHarness(t, size, 2, RoundRobin)
		h.produce(100)
		// A record of subpartition 0 delivered to gate 1 as well.
		h.stream[1] = append(h.stream[1], h.stream[0][3])
		st := h.deliver()
		if st.ChecksumFailures+st.Invalid+st.Duplicated == 0 {
			t.Fatalf("size %d: misrouted record not detected: %+v", size, st)
		}
	}
}

func TestHelloMismatchAndMissing(t *testing.T) {
	clock := NewClock()
	g := NewGateVerifier(0, 2, 3, clock)
	if err := g.Event(0, Hello{Writer: 0, Writers: 2, Readers: 4}.Encode()); err == nil {
		t.Fatal("readers mismatch accepted")
	}
	g = NewGateVerifier(0, 1, 1, clock)
	enc := NewEncoder(0, 1, RoundRobin, 64, 1, clock)
	rec, _ := enc.Next()
	g.Record(0, rec)
	st := g.Stats()
	if st.Invalid != 1 || st.Incomplete != 1 {
		t.Fatalf("record before hello: %+v", st)
	}
}

func TestCompactSequenceWraps(t *testing.T) {
	clock := NewClock()
	enc := NewEncoder(0, 1, RoundRobin, 8, 16, clock)
	g := NewGateVerifier(0, 1, 1, clock)
	_ = g.Event(0, Hello{Writer: 0, Writers: 1, Readers: 1, RecordSize: 8}.Encode())
	start := uint64(1<<31 - 100)
	enc.next[0] = start
	enc.n = start
	g.ch[0].next = start
	for range 300 {
		rec, _ := enc.Next()
		g.Record(0, rec)
	}
	for _, ev := range EndEvents(0, enc.SentCounts(), 1000) {
		_ = g.Event(0, ev)
	}
	st := g.Stats()
	if st.Lost+st.Duplicated+st.Reordered+st.ChecksumFailures+st.Invalid != 0 {
		t.Fatalf("wrap: %+v", st)
	}
}

func TestEncodeVerifyNoAllocs(t *testing.T) {
	for _, size := range []int{8, 64} {
		clock := NewClock()
		enc := NewEncoder(0, 4, Hash, size, 16, clock)
		gs := make([]*GateVerifier, 4)
		for s := range gs {
			gs[s] = NewGateVerifier(s, 1, 4, clock)
			_ = gs[s].Event(0, Hello{Writer: 0, Writers: 1, Readers: 4, Selector: Hash, RecordSize: size}.Encode())
		}
		allocs := testing.AllocsPerRun(10000, func() {
			rec, sub := enc.Next()
			gs[sub].Record(0, rec)
		})
		if allocs != 0 {
			t.Fatalf("size %d: %v allocs per record", size, allocs)
		}
		b := enc.NewBatch(64)
		allocs = testing.AllocsPerRun(1000, func() {
			for _, rec := range enc.Fill(b, 64) {
				gs[HashSub(HashKey(rec), 4)].Record(0, rec)
			}
		})
		if allocs != 0 {
			t.Fatalf("size %d: %v allocs per batch", size, allocs)
		}
	}
}

func TestHelloRoundTrip(t *testing.T) {
	h := Hello{Writer: 3, Writers: 4, Readers: 100, Selector: Hash, RecordSize: 8, SampleEvery: 16,
		BufferTimeout: 1500000, Rate: 12.5, ClockAbs: 123456789, BootID: "abc-def", ChecksumEvery: 64}
	got, err := decodeHello(h.Encode())
	if err != nil || got != h {
		t.Fatalf("got %+v, %v; want %+v", got, err, h)
	}
	if _, err := decodeHello([]byte("QXE1 not a hello")); err == nil {
		t.Fatal("decoded garbage")
	}
}

// TestFillMatchesNext: a batch holds the very records Next would have
// built, in order, at every size and selector, whatever the batch sizes.
func TestFillMatchesNext(t *testing.T) {
	for _, size := range []int{8, 12, 32, 100} {
		for _, sel := range []string{RoundRobin, Hash, Broadcast} {
			for _, mode := range []string{VerifyFull, VerifySampled} {
				clock := NewClock()
				one := NewEncoder(1, 7, sel, size, 1<<30, clock)
				many := NewEncoder(1, 7, sel, size, 1<<30, clock)
				one.SetVerify(mode)
				many.SetVerify(mode)
				// Only the first record is sampled (its send time picks
				// its subpartition under hash): after it, with the same
				// last send time and counts, both must agree byte for
				// byte.
				one.Next()
				many.Next()
				many.lastTS = one.lastTS
				copy(many.next, one.next)
				b := many.NewBatch(64)
				total := 1
				for _, k := range []int{64, 1, 63, 200, 5} {
					recs := many.Fill(b, k)
					if len(recs) != min(k, 64) {
						t.Fatalf("Fill(%d) gave %d records", k, len(recs))
					}
					for i, r := range recs {
						want, _ := one.Next()
						if string(r) != string(want) {
							t.Fatalf("%d/%s/%s: record %d: batch %x, Next %x", size, sel, mode, total+i, r, want)
						}
					}
					total += len(recs)
				}
				if fmt.Sprint(one.SentCounts()) != fmt.Sprint(many.SentCounts()) {
					t.Fatalf("sent counts %v vs %v", one.SentCounts(), many.SentCounts())
				}
			}
		}
	}
}

// TestFillReadsTheClockOncePerBatch: the sampled records of one batch
// share one send time, and the stream still verifies cleanly.
func TestFillReadsTheClockOncePerBatch(t *testing.T) {
	h := newHarnessSampling(t, 64, 3, RoundRobin, 4)
	b := h.enc.NewBatch(32)
	for batch := range 10 {
		var ts []uint64
		for _, r := range h.enc.Fill(b, 32) {
			if binary.LittleEndian.Uint64(r[0:8])&sampledBit64 != 0 {
				ts = append(ts, binary.LittleEndian.Uint64(r[16:24]))
			}
			sub := int(binary.LittleEndian.Uint32(r[8:12]))
			h.stream[sub] = append(h.stream[sub], append([]byte(nil), r...))
		}
		if len(ts) != 8 {
			t.Fatalf("batch %d: %d sampled records of 32 with sampling 1 in 4", batch, len(ts))
		}
		for _, x := range ts {
			if x != ts[0] {
				t.Fatalf("batch %d: send times %v differ within one batch", batch, ts)
			}
		}
	}
	if st := h.deliver(); st.Records != 320 || st.Lost+st.Duplicated+st.Reordered+st.ChecksumFailures+st.Invalid != 0 || st.Hist.Count() != 80 {
		t.Fatalf("stats %+v", st)
	}
}

// TestNewBufferReadsTheClockOnce: within one buffer the consumer's
// arrival time is read once; without NewBuffer, at each sampled record.
func TestNewBufferReadsTheClockOnce(t *testing.T) {
	g := NewGateVerifier(0, 1, 1, NewClock())
	if a, b := g.now(), g.now(); a == b && a == g.nowAt && g.haveNow {
		t.Fatalf("clock cached without NewBuffer")
	}
	g.NewBuffer()
	a := g.now()
	for range 1000 {
		if b := g.now(); b != a {
			t.Fatalf("arrival time changed within a buffer: %d then %d", a, b)
		}
	}
	g.NewBuffer()
	if b := g.now(); b == a {
		t.Fatalf("arrival time not read again for a new buffer")
	}
}
