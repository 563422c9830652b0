package workload

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestSampledModeCleanStreams: sampled verification accepts every clean
// stream, at every size and selector, and counts every record.
func TestSampledModeCleanStreams(t *testing.T) {
	for _, size := range []int{8, 12, 32, 64, 1000} {
		for _, sel := range []string{RoundRobin, Hash, Broadcast} {
			t.Run(fmt.Sprintf("%d/%s", size, sel), func(t *testing.T) {
				h := newHarnessMode(t, size, 5, sel, 16, VerifySampled)
				h.produce(3000)
				st := h.deliver()
				want := int64(3000)
				if sel == Broadcast {
					want *= 5
				}
				if st.Records != want || st.Sent != want || st.Lost+st.Duplicated+st.Reordered+st.ChecksumFailures+st.Invalid != 0 || st.Incomplete != 0 {
					t.Fatalf("want %d clean records, got %+v", want, st)
				}
			})
		}
	}
}

// TestSampledModeCountsExactly: loss, duplication and reordering are
// counted exactly in sampled mode too, on records that carry the full
// check and on records that do not; a corrupted header is caught on
// every record, a corrupted filler only on checked records.
func TestSampledModeCountsExactly(t *testing.T) {
	for _, size := range []int{12, 64} {
		for _, at := range []int{64, 65} { // 64: carries the full check; 65: does not
			t.Run(fmt.Sprintf("%d/record%d", size, at), func(t *testing.T) {
				check := func(name string, tamper func(s [][]byte) [][]byte, want func(Stats) bool) {
					t.Helper()
					h := newHarnessMode(t, size, 1, RoundRobin, 1<<30, VerifySampled)
					h.produce(300)
					h.stream[0] = tamper(h.stream[0])
					if st := h.deliver(); !want(st) {
						t.Errorf("%s: stats %+v", name, st)
					}
				}
				check("lost", func(s [][]byte) [][]byte { return append(s[:at:at], s[at+1:]...) },
					func(st Stats) bool { return st.Lost == 1 && st.Duplicated+st.Reordered+st.ChecksumFailures == 0 })
				check("duplicated", func(s [][]byte) [][]byte { return append(append(s[:at+1:at+1], s[at]), s[at+1:]...) },
					func(st Stats) bool { return st.Duplicated == 1 && st.Lost+st.Reordered+st.ChecksumFailures == 0 })
				check("reordered", func(s [][]byte) [][]byte {
					s[at], s[at+1] = s[at+1], s[at]
					return s
				}, func(st Stats) bool { return st.Reordered == 1 && st.Lost+st.Duplicated+st.ChecksumFailures == 0 })
				check("corrupt-sequence", func(s [][]byte) [][]byte {
					s[at] = append([]byte(nil), s[at]...)
					s[at][1] ^= 1 // sequence + 256: the check word no longer matches
					return s
				}, func(st Stats) bool { return st.ChecksumFailures == 1 && st.Lost == 1 })
				filler := func(st Stats) bool { return st.ChecksumFailures == 0 && st.Lost == 0 }
				if at%SampledChecksumEvery == 0 {
					filler = func(st Stats) bool { return st.ChecksumFailures == 1 && st.Lost == 1 }
				}
				check("corrupt-filler", func(s [][]byte) [][]byte {
					s[at] = append([]byte(nil), s[at]...)
					if size >= FullSize {
						s[at][FullSize-8]++ // first filler byte
					} else {
						s[at][size-1]++ // last filler byte
					}
					return s
				}, filler)
			})
		}
	}
}

// TestSampledModeSkipsTheChecksum: in sampled mode the producer writes
// the xxhash64 only on one record in SampledChecksumEvery per channel.
func TestSampledModeSkipsTheChecksum(t *testing.T) {
	enc := NewEncoder(0, 1, RoundRobin, 64, 1<<30, NewClock())
	enc.SetVerify(VerifySampled)
	with := 0
	for i := range 4 * SampledChecksumEvery {
		r, _ := enc.Next()
		if xxhash.Sum64(r[:56]) == binary.LittleEndian.Uint64(r[56:]) {
			with++
			if i%SampledChecksumEvery != 0 {
				t.Fatalf("record %d carries the xxhash64 in sampled mode", i)
			}
		}
	}
	if with != 4 {
		t.Fatalf("%d records with the xxhash64, want 4", with)
	}
}

func TestHelloRejectsBadChecksumInterval(t *testing.T) {
	g := NewGateVerifier(0, 1, 1, NewClock())
	if err := g.Event(0, Hello{Writer: 0, Writers: 1, Readers: 1, RecordSize: 64, ChecksumEvery: 48}.Encode()); err == nil {
		t.Fatal("checksum interval 48 accepted")
	}
}

var benchSizes = []int{8, 64, 1024, 32 << 10}

// BenchmarkVerify is the consumer's verification cost per record (one
// channel, records in order) in both modes: ns/op is ns per record.
// Compare full with sampled at the same size for the checksum's share.
// Like the consumer, it reads the clock once per buffer of records
// (NewBuffer every 32 KiB).
func BenchmarkVerify(b *testing.B) {
	for _, mode := range []string{VerifyFull, VerifySampled} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				clock := NewClock()
				enc := NewEncoder(0, 1, RoundRobin, size, DefaultSampleEvery, clock)
				enc.SetVerify(mode)
				// A run of records encoded up front (at most 8 MiB), fed
				// again and again; the channel's expected sequence is
				// rewound with it so every pass verifies as in order.
				n := min(1<<16, (8<<20)/size)
				n -= n % SampledChecksumEvery
				recs := make([][]byte, n)
				for i := range recs {
					r, _ := enc.Next()
					recs[i] = append([]byte(nil), r...)
				}
				g := NewGateVerifier(0, 1, 1, clock)
				_ = g.Event(0, Hello{Writer: 0, Writers: 1, Readers: 1, RecordSize: size, ChecksumEvery: ChecksumEvery(mode)}.Encode())
				b.SetBytes(int64(size))
				perBuffer := max((32<<10)/(size+4), 1)
				i := 0
				for b.Loop() {
					if i == n {
						i = 0
						g.ch[0].next = 0
					}
					if i%perBuffer == 0 {
						g.NewBuffer()
					}
					g.Record(0, recs[i])
					i++
				}
				if st := g.Stats(); st.ChecksumFailures+st.Invalid+st.Duplicated+st.Reordered != 0 {
					b.Fatalf("verification failed: %+v", st)
				}
			})
		}
	}
}

// BenchmarkEncode is the producer's side: ns per record to build it,
// checksum included (full) or sampled.
func BenchmarkEncode(b *testing.B) {
	benchEncoder(b, func(b *testing.B, enc *Encoder) {
		for b.Loop() {
			enc.Next()
		}
	})
}

// BenchmarkFill is the producer's side as the bench runs it unpaced:
// records built DefaultBatch at a time (the clock read once per batch);
// ns/op is ns per record.
func BenchmarkFill(b *testing.B) {
	benchEncoder(b, func(b *testing.B, enc *Encoder) {
		batch := enc.NewBatch(DefaultBatch)
		for i := 0; i < b.N; i += DefaultBatch {
			enc.Fill(batch, min(DefaultBatch, b.N-i))
		}
	})
}

// benchEncoder runs loop on a round-robin encoder of 100 subpartitions
// in both modes at every benchmark size.
func benchEncoder(b *testing.B, loop func(*testing.B, *Encoder)) {
	for _, mode := range []string{VerifyFull, VerifySampled} {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dB", mode, size), func(b *testing.B) {
				enc := NewEncoder(0, 100, RoundRobin, size, DefaultSampleEvery, NewClock())
				enc.SetVerify(mode)
				b.SetBytes(int64(size))
				loop(b, enc)
			})
		}
	}
}

// BenchmarkSequenceOnly is the floor both modes keep: the per-channel
// sequence accounting alone.
func BenchmarkSequenceOnly(b *testing.B) {
	g := NewGateVerifier(0, 1, 1, NewClock())
	c := &g.ch[0]
	var seq uint64
	for b.Loop() {
		g.sequence(c, seq)
		seq++
	}
}
