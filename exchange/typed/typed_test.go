package typed_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/typed"
)

type point struct {
	X, Y int32
	W    float64
	Tag  [4]byte
}

func TestCodecsRoundTrip(t *testing.T) {
	pointCodec, err := typed.NewFixed[point]()
	if err != nil {
		t.Fatal(err)
	}
	if pointCodec.Size() != 20 {
		t.Fatalf("point size %d, want 20", pointCodec.Size())
	}
	p := point{X: -3, Y: 7, W: 2.5, Tag: [4]byte{'a', 'b', 'c', 'd'}}
	b, err := pointCodec.Append(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := pointCodec.Decode(b); err != nil || got != p {
		t.Fatalf("point: %+v, %v", got, err)
	}
	u64, _ := typed.NewFixed[uint64]()
	i64, _ := typed.NewFixed[int64]()
	f64, _ := typed.NewFixed[float64]()
	i32, _ := typed.NewFixed[int32]()
	for _, v := range []uint64{0, 1, 1 << 63} {
		b, _ := u64.Append(nil, v)
		if got, err := u64.Decode(b); err != nil || got != v {
			t.Fatalf("uint64 %d: %d, %v", v, got, err)
		}
	}
	for _, v := range []int64{-1, 0, -1 << 63} {
		b, _ := i64.Append(nil, v)
		if got, err := i64.Decode(b); err != nil || got != v {
			t.Fatalf("int64 %d: %d, %v", v, got, err)
		}
	}
	for _, v := range []float64{-0.5, 3.25} {
		b, _ := f64.Append(nil, v)
		if got, err := f64.Decode(b); err != nil || got != v {
			t.Fatalf("float64 %v: %v, %v", v, got, err)
		}
	}
	b, _ = i32.Append(nil, -42)
	if got, err := i32.Decode(b); err != nil || got != -42 || len(b) != 4 {
		t.Fatalf("int32: %d (%d bytes), %v", got, len(b), err)
	}
	s, _ := typed.String{}.Append([]byte("x"), "yz")
	if got, _ := (typed.String{}).Decode(s); got != "xyz" {
		t.Fatalf("string: %q", got)
	}
	raw := []byte("abc")
	got, _ := typed.Bytes{}.Decode(raw)
	raw[0] = 'z'
	if string(got) != "abc" {
		t.Fatalf("Bytes.Decode kept the gate's slice: %q", got)
	}
}

func TestFixedRejects(t *testing.T) {
	if _, err := typed.NewFixed[int](); err == nil {
		t.Fatal("NewFixed[int]: no error; int has no fixed binary size")
	}
	if _, err := typed.NewFixed[string](); err == nil {
		t.Fatal("NewFixed[string]: no error")
	}
	u64, _ := typed.NewFixed[uint64]()
	_, err := u64.Decode([]byte{1, 2, 3})
	var de *typed.DecodeError
	if !errors.As(err, &de) || de.Len != 3 {
		t.Fatalf("decoding 3 bytes as uint64: %v, want a *DecodeError with Len 3", err)
	}
	var unmade typed.Fixed[uint64]
	if _, err := unmade.Append(nil, 1); err == nil {
		t.Fatal("zero Fixed codec encoded without NewFixed")
	}
}

// HashKey must route like exchange.Hash over the same key bytes, so typed
// and untyped producers of one job agree.
func TestHashKeyMatchesExchangeHash(t *testing.T) {
	sel := typed.HashKey[string]{Key: func(s string) string { return s }}
	for _, w := range []string{"", "a", "apple", "banana", "a much longer key than the others"} {
		for _, n := range []int{1, 3, 64} {
			if got, want := sel.Select(w, n), (exchange.Hash{}).SelectChannel([]byte(w), n); got != want {
				t.Fatalf("key %q over %d: typed %d, exchange %d", w, n, got, want)
			}
		}
	}
}

func newLocal(t testing.TB, subs int) (*exchange.ResultPartition, *exchange.InputGate) {
	t.Helper()
	env, err := exchange.NewEnvironment(context.Background(), exchange.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, subs)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i}
	}
	g, err := env.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		env.Close()
		transporttest.CheckPools(t, env)
	})
	return p, g
}

// Words hash-partitioned by value arrive whole, each key on one channel.
func TestWriterGateKeysStayTogether(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, g := newLocal(t, 4)
	w := typed.NewWriter[string](p, typed.String{}, typed.HashKey[string]{Key: func(s string) string { return s }})
	words := []string{"to", "be", "or", "not", "to", "be", "that", "is", "the", "question"}
	go func() {
		for _, word := range words {
			if err := w.Emit(ctx, word); err != nil {
				t.Error(err)
				return
			}
		}
		if err := w.Finish(ctx); err != nil {
			t.Error(err)
		}
	}()
	counts := map[string]int{}
	channelOf := map[string]int{}
	tg := typed.NewGate[string](g, typed.String{})
	for {
		e, err := tg.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != nil {
			continue
		}
		counts[e.Value]++
		if c, seen := channelOf[e.Value]; seen && c != e.Channel {
			t.Fatalf("key %q arrived on channels %d and %d", e.Value, c, e.Channel)
		}
		channelOf[e.Value] = e.Channel
	}
	if counts["to"] != 2 || counts["be"] != 2 || counts["question"] != 1 || len(counts) != 8 {
		t.Fatalf("counts %v", counts)
	}
}

// A fixed-size value costs no allocation per record, on either side.
func TestFixedAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	ctx := context.Background()
	p, g := newLocal(t, 1)
	codec, _ := typed.NewFixed[point]()
	w := typed.NewWriter[point](p, codec, nil)
	tg := typed.NewGate[point](g, codec)
	v := point{X: 1, Y: 2, W: 3}
	// Warm up: the scratch buffer and the first segments.
	for range 10 {
		if err := w.Emit(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	p.Flush()
	for range 10 {
		if _, err := tg.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := w.Emit(ctx, v); err != nil {
			t.Fatal(err)
		}
		p.Flush()
		e, err := tg.Next(ctx)
		if err != nil || e.Value != v {
			t.Fatalf("Next: %+v, %v", e, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per record, want 0", allocs)
	}
}

// EmitAll and NextBatch carry values as Emit and Next do: each to the
// subpartition its selector picks, in order, with no allocation per value
// once warm; an encoding error stops EmitAll after the values before it.
func TestEmitAllNextBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, g := newLocal(t, 3)
	codec, _ := typed.NewFixed[point]()
	w := typed.NewWriter[point](p, codec, typed.HashKey[point]{Key: func(v point) string { return string(v.Tag[:]) }})
	tg := typed.NewGate[point](g, codec)
	batch := make([]point, 50)
	for i := range batch {
		batch[i] = point{X: int32(i), Tag: [4]byte{byte('a' + i%5)}}
	}
	if n, err := w.EmitAll(ctx, batch); n != len(batch) || err != nil {
		t.Fatalf("EmitAll: %d, %v", n, err)
	}
	p.Flush()
	channelOf := map[byte]int{}
	last := map[int]int32{}
	got := 0
	for got < len(batch) {
		err := tg.NextBatch(ctx, func(e typed.Element[point]) bool {
			if e.Event != nil {
				return true
			}
			if c, seen := channelOf[e.Value.Tag[0]]; seen && c != e.Channel {
				t.Errorf("key %c on channels %d and %d", e.Value.Tag[0], c, e.Channel)
			}
			channelOf[e.Value.Tag[0]] = e.Channel
			if prev, ok := last[e.Channel]; ok && e.Value.X <= prev {
				t.Errorf("channel %d: %d after %d", e.Channel, e.Value.X, prev)
			}
			last[e.Channel] = e.Value.X
			got++
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	rr := typed.NewWriter[point](p, codec, nil) // (the key function above allocates its string)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := rr.EmitAll(ctx, batch); err != nil {
			t.Fatal(err)
		}
		p.Flush()
		for n := 0; n < len(batch); {
			if err := tg.NextBatch(ctx, func(e typed.Element[point]) bool {
				if e.Event == nil {
					n++
				}
				return true
			}); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch of %d", allocs, len(batch))
	}

	// An error in the middle: the values before it are written.
	bad := typed.NewWriter[string](p, failAt{at: "x"}, nil)
	if n, err := bad.EmitAll(ctx, []string{"a", "b", "x", "c"}); n != 2 || err == nil || !strings.Contains(err.Error(), "typed: encode") {
		t.Fatalf("EmitAll with a bad value: %d, %v", n, err)
	}
}

// A record the codec rejects ends NextBatch with a *DecodeError; the next
// call goes on after it.
func TestNextBatchDecodeError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, g := newLocal(t, 1)
	for _, r := range []string{"12345678", "bad", "87654321"} {
		if err := p.EmitTo(ctx, 0, []byte(r)); err != nil {
			t.Fatal(err)
		}
	}
	p.Flush()
	tg := typed.NewGate[uint64](g, must(typed.NewFixed[uint64]()))
	var vals []uint64
	collect := func(e typed.Element[uint64]) bool {
		if e.Event == nil {
			vals = append(vals, e.Value)
		}
		return true
	}
	var de *typed.DecodeError
	if err := tg.NextBatch(ctx, collect); !errors.As(err, &de) || de.Len != 3 || len(vals) != 1 {
		t.Fatalf("first batch: %v, values %v", err, vals)
	}
	if err := tg.NextBatch(ctx, collect); err != nil || len(vals) != 2 || vals[1] != 0x3132333435363738 {
		t.Fatalf("after the bad record: %v, values %x", err, vals)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// failAt is a string codec that refuses one value.
type failAt struct{ at string }

func (f failAt) Append(dst []byte, v string) ([]byte, error) {
	if v == f.at {
		return dst, errors.New("refused")
	}
	return append(dst, v...), nil
}

func (failAt) Decode(b []byte) (string, error) { return string(b), nil }
