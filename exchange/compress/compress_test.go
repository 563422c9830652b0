package compress_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/qexchange/qexchange/exchange/compress"
)

const segmentSize = 32 << 10

// textRecords fills n bytes with length-prefixed, log-like records, the
// shape a record writer produces for text payloads.
func textRecords(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	words := []string{"order", "customer", "status=shipped", "status=pending", "region=eu-west", "region=us-east", "amount", "currency=EUR", "warehouse", "priority=high"}
	out := make([]byte, 0, n+256)
	for len(out) < n {
		var rec []byte
		rec = fmt.Appendf(rec, "ts=2026-11-30T05:%02d:%02d id=%d", rng.IntN(60), rng.IntN(60), rng.IntN(1_000_000))
		for range 4 {
			rec = append(rec, ' ')
			rec = append(rec, words[rng.IntN(len(words))]...)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(rec)))
		out = append(out, rec...)
	}
	return out[:n]
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

func mustDecompressor(t testing.TB, max int) *compress.Decompressor {
	t.Helper()
	d, err := compress.NewDecompressor(max)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRandomBuffersAreNeverCompressed(t *testing.T) {
	c := compress.NewCompressor()
	dst := make([]byte, 64<<10)
	for i := range 32 {
		src := randomBytes(64<<10, uint64(i))
		if n, ok := c.Compress(dst, src); ok {
			t.Fatalf("random buffer %d compressed to %d of %d bytes", i, n, len(src))
		}
	}
	s := c.Stats()
	if s.Compressed != 0 || s.Uncompressed != 32 {
		t.Fatalf("stats %+v, want 0 compressed, 32 uncompressed", s)
	}
	if s.Ratio() != 1 {
		t.Fatalf("ratio %v for uncompressed buffers, want 1", s.Ratio())
	}
}

func TestTextRecordsCompressAtLeastTwice(t *testing.T) {
	c := compress.NewCompressor()
	d := mustDecompressor(t, segmentSize)
	dst := make([]byte, segmentSize)
	out := make([]byte, segmentSize)
	for i := range 16 {
		src := textRecords(segmentSize, uint64(i))
		n, ok := c.Compress(dst, src)
		if !ok {
			t.Fatalf("text buffer %d did not compress", i)
		}
		m, err := d.Decompress(out, dst[:n])
		if err != nil || !bytes.Equal(out[:m], src) {
			t.Fatalf("round trip of buffer %d: err %v, equal %v", i, err, bytes.Equal(out[:m], src))
		}
	}
	if s := c.Stats(); s.Ratio() < 2 {
		t.Fatalf("text compressed %.2fx (%+v), want >= 2x", s.Ratio(), s)
	}
}

func TestRoundTripShapes(t *testing.T) {
	shapes := map[string][]byte{
		"one byte":          {7},
		"zeros 32KiB":       make([]byte, segmentSize),
		"zeros 15 bytes":    make([]byte, 15),
		"text 100 bytes":    textRecords(100, 1),
		"text 4097 bytes":   textRecords(4097, 2),
		"text 32KiB":        textRecords(segmentSize, 3),
		"random 1000 bytes": randomBytes(1000, 4),
		"half random half zero": append(randomBytes(segmentSize/2, 5),
			make([]byte, segmentSize/2)...),
		"repeating 8-byte record": bytes.Repeat([]byte{0, 0, 0, 4, 1, 2, 3, 4}, segmentSize/8),
		"counter records": func() []byte {
			b := make([]byte, 0, segmentSize)
			for i := 0; len(b) < segmentSize; i++ {
				b = binary.BigEndian.AppendUint32(b, 8)
				b = binary.BigEndian.AppendUint64(b, uint64(i))
			}
			return b[:segmentSize]
		}(),
	}
	c := compress.NewCompressor()
	d := mustDecompressor(t, segmentSize)
	for name, src := range shapes {
		t.Run(name, func(t *testing.T) {
			dst := make([]byte, segmentSize)
			n, ok := c.Compress(dst, src)
			if !ok {
				if n != 0 {
					t.Fatalf("not compressed but n = %d", n)
				}
				return // sent as it is; nothing to decode
			}
			if n >= len(src) {
				t.Fatalf("compressed %d bytes to %d: did not shrink", len(src), n)
			}
			out := make([]byte, segmentSize)
			m, err := d.Decompress(out, dst[:n])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out[:m], src) {
				t.Fatalf("round trip differs: %d bytes back of %d", m, len(src))
			}
		})
	}
	if s := c.Stats(); s.Compressed == 0 || s.Uncompressed == 0 {
		t.Fatalf("stats %+v: the shapes should include both outcomes", s)
	}
}

func TestEmptyAndTinyBuffersAreNotCompressed(t *testing.T) {
	c := compress.NewCompressor()
	dst := make([]byte, 64)
	for _, src := range [][]byte{nil, {1}, {0, 0}} {
		if _, ok := c.Compress(dst, src); ok {
			t.Fatalf("%d-byte buffer compressed", len(src))
		}
	}
}

func TestDecompressBound(t *testing.T) {
	c := compress.NewCompressor()
	src := make([]byte, segmentSize) // zeros: compresses to a few hundred bytes
	dst := make([]byte, segmentSize)
	n, ok := c.Compress(dst, src)
	if !ok {
		t.Fatal("zeros did not compress")
	}
	// A peer with a larger segment size (or a hostile one) sends a payload
	// that decodes to more than our segment: a typed error, not an overrun.
	small := mustDecompressor(t, segmentSize/2)
	out := make([]byte, segmentSize)
	_, err := small.Decompress(out, dst[:n])
	var ce *compress.CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, compress.ErrCorrupt) {
		t.Fatalf("decode beyond bound: %v, want *CorruptError", err)
	}
	if ce.Bound != segmentSize/2 || ce.Len != n {
		t.Fatalf("error fields %+v, want bound %d, len %d", ce, segmentSize/2, n)
	}
	// The same via a too-short dst.
	big := mustDecompressor(t, segmentSize)
	if _, err := big.Decompress(out[:100], dst[:n]); !errors.Is(err, compress.ErrCorrupt) {
		t.Fatalf("decode into short dst: %v, want ErrCorrupt", err)
	}
}

func TestDecompressEmptyIsCorrupt(t *testing.T) {
	d := mustDecompressor(t, segmentSize)
	if _, err := d.Decompress(make([]byte, 16), nil); !errors.Is(err, compress.ErrCorrupt) {
		t.Fatalf("empty payload: %v, want ErrCorrupt", err)
	}
}

func TestNewDecompressorRejectsBadSize(t *testing.T) {
	for _, max := range []int{0, -1} {
		if _, err := compress.NewDecompressor(max); !errors.Is(err, compress.ErrInvalidConfig) {
			t.Fatalf("NewDecompressor(%d): %v, want ErrInvalidConfig", max, err)
		}
	}
}

func TestNoAllocationsPerBuffer(t *testing.T) {
	c := compress.NewCompressor()
	d := mustDecompressor(t, segmentSize)
	src := textRecords(segmentSize, 9)
	dst := make([]byte, segmentSize)
	out := make([]byte, segmentSize)
	n, _ := c.Compress(dst, src)
	if a := testing.AllocsPerRun(50, func() { c.Compress(dst, src) }); a != 0 {
		t.Errorf("Compress allocates %.1f per buffer", a)
	}
	if a := testing.AllocsPerRun(50, func() {
		if _, err := d.Decompress(out, dst[:n]); err != nil {
			panic(err)
		}
	}); a != 0 {
		t.Errorf("Decompress allocates %.1f per buffer", a)
	}
}

func FuzzDecompress(f *testing.F) {
	c := compress.NewCompressor()
	for _, src := range [][]byte{textRecords(2000, 1), make([]byte, 5000), {1, 2, 3}} {
		dst := make([]byte, len(src))
		if n, ok := c.Compress(dst, src); ok {
			f.Add(dst[:n])
			f.Add(dst[:n/2])
		}
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{0x1f, 0x00, 0x01, 0x00})
	const bound = 4096
	d, err := compress.NewDecompressor(bound)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		// dst has a guard region beyond the bound that must stay untouched.
		dst := make([]byte, bound+64)
		for i := bound; i < len(dst); i++ {
			dst[i] = 0xAA
		}
		n, err := d.Decompress(dst, payload)
		if err != nil {
			var ce *compress.CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, compress.ErrCorrupt) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			if n != 0 {
				t.Fatalf("error with n = %d", n)
			}
		} else if n < 0 || n > bound {
			t.Fatalf("decoded %d bytes, bound %d", n, bound)
		}
		checkGuard(t, dst, bound)

		// In place: the payload arrived in a segment of the bound's size.
		if len(payload) > bound {
			return
		}
		seg := make([]byte, bound+64)
		copy(seg, payload)
		for i := bound; i < len(seg); i++ {
			seg[i] = 0xAA
		}
		m, err2 := d.DecompressInPlace(seg[:bound], len(payload))
		if (err == nil) != (err2 == nil) || (err == nil && (m != n || !bytes.Equal(seg[:m], dst[:n]))) {
			t.Fatalf("in place: %d, %v; with a dst: %d, %v", m, err2, n, err)
		}
		checkGuard(t, seg, bound)
	})
}

func checkGuard(t *testing.T, b []byte, bound int) {
	t.Helper()
	for i := bound; i < len(b); i++ {
		if b[i] != 0xAA {
			t.Fatalf("wrote beyond the bound at %d", i)
		}
	}
}

func BenchmarkCompressText32KiB(b *testing.B) {
	benchCompress(b, textRecords(segmentSize, 1), true)
}

func BenchmarkCompressRandom32KiB(b *testing.B) {
	benchCompress(b, randomBytes(segmentSize, 1), false)
}

// benchCompress reports MB/s of input and the ratio; every buffer must
// come out compressed (or not) as wantCompressed says.
func benchCompress(b *testing.B, src []byte, wantCompressed bool) {
	c := compress.NewCompressor()
	dst := make([]byte, segmentSize)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Compress(dst, src); ok != wantCompressed {
			b.Fatalf("compressed = %v, want %v", ok, wantCompressed)
		}
	}
	b.ReportMetric(c.Stats().Ratio(), "ratio")
}

func BenchmarkDecompressText32KiB(b *testing.B) {
	c := compress.NewCompressor()
	d := mustDecompressor(b, segmentSize)
	src := textRecords(segmentSize, 1)
	comp := make([]byte, segmentSize)
	n, ok := c.Compress(comp, src)
	if !ok {
		b.Fatal("did not compress")
	}
	out := make([]byte, segmentSize)
	b.SetBytes(int64(len(src))) // MB/s of decompressed output
	b.ReportAllocs()
	for b.Loop() {
		if m, err := d.Decompress(out, comp[:n]); err != nil || m != len(src) {
			b.Fatalf("decoded %d, %v", m, err)
		}
	}
}

// In place: the segment that held the record bytes holds the compressed
// bytes, and the segment that received them holds the records again.
func TestInPlaceRoundTrip(t *testing.T) {
	c := compress.NewCompressor()
	d := mustDecompressor(t, segmentSize)
	seg := make([]byte, segmentSize)
	for i, src := range [][]byte{textRecords(segmentSize, 1), textRecords(1000, 2), randomBytes(4096, 3)} {
		copy(seg, src)
		n, ok := c.CompressInPlace(seg, len(src))
		if !ok {
			if !bytes.Equal(seg[:len(src)], src) {
				t.Fatalf("case %d: an uncompressed buffer was changed", i)
			}
			continue
		}
		m, err := d.DecompressInPlace(seg, n)
		if err != nil || !bytes.Equal(seg[:m], src) {
			t.Fatalf("case %d: in-place round trip: %v", i, err)
		}
	}
	// Each run compresses the text in seg and restores it.
	text := textRecords(segmentSize, 4)
	copy(seg, text)
	if a := testing.AllocsPerRun(20, func() {
		n, ok := c.CompressInPlace(seg, segmentSize)
		if m, err := d.DecompressInPlace(seg, n); !ok || err != nil || m != segmentSize {
			panic(fmt.Sprint(ok, err, m))
		}
	}); a != 0 {
		t.Errorf("in-place round trip allocates %.1f per buffer", a)
	}
	if !bytes.Equal(seg, text) {
		t.Fatal("repeated in-place round trips changed the data")
	}
}
