package typed_test

import (
	"context"
	"testing"

	"github.com/qexchange/qexchange/exchange/typed"
)

// BenchmarkTypedFixed is one 20-byte struct through Writer.Emit and
// Gate.Next on a local channel; BenchmarkRawBytes, the same bytes through
// the untyped API in the same run, is its baseline.
func BenchmarkTypedFixed(b *testing.B) {
	ctx := context.Background()
	p, g := newLocal(b, 1)
	codec, _ := typed.NewFixed[point]()
	w := typed.NewWriter[point](p, codec, nil)
	tg := typed.NewGate[point](g, codec)
	v := point{X: 1, Y: 2, W: 3}
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Emit(ctx, v); err != nil {
			b.Fatal(err)
		}
		p.Flush()
		if _, err := tg.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawBytes(b *testing.B) {
	ctx := context.Background()
	p, g := newLocal(b, 1)
	rec := make([]byte, 20)
	b.ReportAllocs()
	for b.Loop() {
		if err := p.EmitTo(ctx, 0, rec); err != nil {
			b.Fatal(err)
		}
		p.Flush()
		if _, err := g.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTypedFixedBatch is BenchmarkTypedFixed with EmitAll and
// NextBatch, 64 values at a time: ns/op is ns per value.
func BenchmarkTypedFixedBatch(b *testing.B) {
	ctx := context.Background()
	p, g := newLocal(b, 1)
	codec, _ := typed.NewFixed[point]()
	w := typed.NewWriter[point](p, codec, nil)
	tg := typed.NewGate[point](g, codec)
	batch := make([]point, 64)
	var got int
	count := func(e typed.Element[point]) bool {
		if e.Event == nil {
			got++
		}
		return true
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i += len(batch) {
		k := min(len(batch), b.N-i)
		if _, err := w.EmitAll(ctx, batch[:k]); err != nil {
			b.Fatal(err)
		}
		p.Flush()
		for want := got + k; got < want; {
			if err := tg.NextBatch(ctx, count); err != nil {
				b.Fatal(err)
			}
		}
	}
}
