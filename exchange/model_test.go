package exchange_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

func localEnv(t *testing.T, cfg exchange.Config) *exchange.Environment {
	t.Helper()
	return transporttest.NewEnv(t, context.Background(), cfg)
}

func TestInsufficientBuffersAtSetup(t *testing.T) {
	env := localEnv(t, exchange.Config{NetworkMemory: 16 * 32 << 10})
	_, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 100})
	var ib *exchange.InsufficientBuffersError
	if !errors.As(err, &ib) || !errors.Is(err, exchange.ErrInsufficientBuffers) {
		t.Fatalf("CreatePartition: %v, want *InsufficientBuffersError", err)
	}
	if ib.Need != 101 || ib.Have != 16 || !strings.Contains(err.Error(), "raise NetworkMemory") || !strings.Contains(err.Error(), "need 101 x 32 KiB") {
		t.Fatalf("error %q: want need 101 x 32 KiB, have 16, and the option to raise", err)
	}
	// Reservations add up: two partitions that fit alone may not fit
	// together.
	if _, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 9}); !errors.Is(err, exchange.ErrInsufficientBuffers) {
		t.Fatalf("second partition: %v, want ErrInsufficientBuffers", err)
	}
}

func TestBadConfiguration(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		cfg   exchange.Config
		field string
	}{
		{"segment too small", exchange.Config{SegmentSize: 1024}, "SegmentSize"},
		{"negative memory", exchange.Config{NetworkMemory: -1}, "NetworkMemory"},
		{"memory below one segment", exchange.Config{NetworkMemory: 1000}, "NetworkMemory"},
		{"negative record size", exchange.Config{MaxRecordSize: -5}, "MaxRecordSize"},
		{"negative segment size", exchange.Config{SegmentSize: -1}, "SegmentSize"},
	} {
		_, err := exchange.NewEnvironment(ctx, c.cfg)
		var ce *exchange.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, exchange.ErrInvalidConfig) {
			t.Errorf("%s: %v, want ConfigError on %s", c.name, err, c.field)
		}
	}
	env := localEnv(t, exchange.Config{})
	for _, n := range []int{0, -3} {
		if _, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: n}); !errors.Is(err, exchange.ErrInvalidConfig) {
			t.Errorf("Subpartitions %d: %v", n, err)
		}
	}
	if _, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, Type: exchange.Pipelined}); !errors.Is(err, exchange.ErrInvalidConfig) {
		t.Errorf("unbounded pipelined partition: %v, want not implemented", err)
	}
	if _, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: -7}); !errors.Is(err, exchange.ErrInvalidConfig) {
		t.Errorf("buffer timeout -7: %v", err)
	}
	if _, err := env.CreateInputGate(exchange.GateConfig{}); !errors.Is(err, exchange.ErrInvalidConfig) {
		t.Errorf("gate without channels: %v", err)
	}
	if _, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Subpartition: -1}}}); !errors.Is(err, exchange.ErrInvalidConfig) {
		t.Errorf("negative subpartition: %v", err)
	}
	if _, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Addr: "10.0.0.1:1"}}}); !errors.Is(err, exchange.ErrInvalidConfig) {
		t.Errorf("remote channel without a transport: %v", err)
	}
}

type badSelector struct{ n int }

func (s badSelector) SelectChannel([]byte, int) int { return s.n }
func (badSelector) IsBroadcast() bool               { return false }

func TestWriterBadInput(t *testing.T) {
	ctx := context.Background()
	env := localEnv(t, exchange.Config{MaxRecordSize: 1000})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, -1, 1 << 40} {
		w := exchange.NewRecordWriter(p, badSelector{n})
		if err := w.Emit(ctx, []byte("x")); !errors.Is(err, exchange.ErrSubpartitionOutOfRange) {
			t.Errorf("selector returning %d: %v", n, err)
		}
	}
	w := exchange.NewRecordWriter(p, nil)
	if err := w.Emit(ctx, make([]byte, 1001)); !errors.Is(err, exchange.ErrRecordTooLarge) {
		t.Errorf("oversized record: %v", err)
	}
	if err := w.Emit(ctx, make([]byte, 1000)); err != nil {
		t.Errorf("record at the limit: %v", err)
	}
	if err := p.EmitTo(ctx, 5, nil); !errors.Is(err, exchange.ErrSubpartitionOutOfRange) {
		t.Errorf("EmitTo(5): %v", err)
	}
	if err := w.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Emit(ctx, []byte("late")); !errors.Is(err, exchange.ErrFinished) {
		t.Errorf("Emit after Finish: %v, want ErrFinished", err)
	}
	p.Release()
	if err := w.Emit(ctx, []byte("late")); !errors.Is(err, exchange.ErrClosed) && !errors.Is(err, exchange.ErrFinished) {
		t.Errorf("Emit after Release: %v", err)
	}
	env.Close()
	if _, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1}); !errors.Is(err, exchange.ErrClosed) {
		t.Errorf("CreatePartition after Close: %v, want ErrClosed", err)
	}
	if _, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{}}}); !errors.Is(err, exchange.ErrClosed) {
		t.Errorf("CreateInputGate after Close: %v, want ErrClosed", err)
	}
}

func TestSecondLocalConsumerRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	spec := []exchange.ChannelSpec{{Partition: p.ID()}}
	g1, err := env.CreateInputGate(exchange.GateConfig{Channels: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer g1.Close()
	g2, err := env.CreateInputGate(exchange.GateConfig{Channels: spec})
	if err != nil {
		t.Fatal(err)
	}
	defer g2.Close()
	if _, err := g2.Next(ctx); !errors.Is(err, exchange.ErrAlreadyConsumed) {
		t.Fatalf("second consumer: %v, want ErrAlreadyConsumed", err)
	}
}

func TestBackpressureBlocksUntilContextDone(t *testing.T) {
	env := localEnv(t, exchange.Config{SegmentSize: 4096})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, MinBuffers: 2, MaxBuffers: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rec := make([]byte, 1000)
	var err2 error
	for i := 0; i < 100 && err2 == nil; i++ {
		err2 = p.EmitTo(ctx, 0, rec)
	}
	if !errors.Is(err2, context.DeadlineExceeded) {
		t.Fatalf("a partition with no reader and 2 buffers: %v, want the context's deadline", err2)
	}
	if out := p.BufferPool().Outstanding(); out > 2 {
		t.Fatalf("partition holds %d buffers, max 2", out)
	}
}

// TestSpanningRecords sends records of every size around the segment
// size, so length prefixes and payloads split at every offset.
func TestSpanningRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SegmentSize: 4096})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sizes := []int{0, 1, 3, 4, 5}
	for n := 4080; n < 4110; n++ {
		sizes = append(sizes, n)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 300 {
		sizes = append(sizes, rng.IntN(3*4096))
	}
	go func() {
		for i, n := range sizes {
			rec := make([]byte, n)
			for k := range rec {
				rec[k] = byte(i + k)
			}
			if err := p.EmitTo(ctx, 0, rec); err != nil {
				t.Error(err)
				return
			}
		}
		p.Finish(ctx)
	}()
	for i := 0; ; {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			if i != len(sizes) {
				t.Fatalf("got %d records, want %d", i, len(sizes))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != nil {
			continue
		}
		if len(e.Record) != sizes[i] {
			t.Fatalf("record %d: %d bytes, want %d", i, len(e.Record), sizes[i])
		}
		for k, b := range e.Record {
			if b != byte(i+k) {
				t.Fatalf("record %d byte %d corrupted", i, k)
			}
		}
		i++
	}
}

func TestBufferTimeoutFlushes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{})
	for _, c := range []struct {
		name    string
		timeout time.Duration
		flushes bool
	}{
		{"every record", exchange.FlushEveryRecord, true},
		{"timer", 5 * time.Millisecond, true},
		{"full buffers only", exchange.FlushFullBuffersOnly, false},
	} {
		p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: c.timeout})
		if err != nil {
			t.Fatal(err)
		}
		g, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID()}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.EmitTo(ctx, 0, []byte("tick")); err != nil {
			t.Fatal(err)
		}
		short, cancelShort := context.WithTimeout(ctx, 500*time.Millisecond)
		e, err := g.Next(short)
		cancelShort()
		if c.flushes && (err != nil || string(e.Record) != "tick") {
			t.Errorf("%s: %q, %v; want the record without an explicit flush", c.name, e.Record, err)
		}
		if !c.flushes && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %q, %v; want nothing before a flush", c.name, e.Record, err)
		}
		if !c.flushes {
			p.Flush()
			if e, err := g.Next(ctx); err != nil || string(e.Record) != "tick" {
				t.Errorf("%s after Flush: %q, %v", c.name, e.Record, err)
			}
		}
		g.Close()
		p.Release()
	}
}

func TestHashSelectorKeepsKeysTogether(t *testing.T) {
	key := func(r []byte) []byte { return r[:4] }
	h := exchange.Hash{Key: key}
	seen := map[uint32]int{}
	counts := make([]int, 16)
	rec := make([]byte, 12)
	for i := range 10_000 {
		k := uint32(i % 97)
		binary.BigEndian.PutUint32(rec, k)
		binary.BigEndian.PutUint64(rec[4:], uint64(i))
		ch := h.SelectChannel(rec, 16)
		if prev, ok := seen[k]; ok && prev != ch {
			t.Fatalf("key %d went to %d and %d", k, prev, ch)
		}
		seen[k] = ch
		counts[ch]++
	}
	for ch, n := range counts {
		if n == 0 {
			t.Errorf("subpartition %d got no keys out of 97", ch)
		}
	}
}

func TestCloseReleasesEverything(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := exchange.NewEnvironment(ctx, exchange.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 4, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := []exchange.ChannelSpec{{Partition: p.ID()}, {Partition: p.ID(), Subpartition: 1}, {Partition: exchange.NewPartitionID()}}
	g, err := env.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	w := exchange.NewRecordWriter(p, nil)
	for range 1000 {
		if err := w.Emit(ctx, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if env.BufferPool().Outstanding() == 0 {
		t.Fatal("expected buffers in use before Close")
	}
	// Close with data queued, a gate mid-buffer, a channel retrying a
	// missing partition and the flusher running.
	env.Close()
	transporttest.CheckPools(t, env)
	checkG()
}

// TestGateEndsWithFailuresNotEOF: once a channel failed, the gate's end
// is an error holding every failure, never io.EOF, however the caller
// treated the *ChannelError.
func TestGateEndsWithFailuresNotEOF(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{})
	good, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: exchange.FlushEveryRecord})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: exchange.FlushEveryRecord})
	if err != nil {
		t.Fatal(err)
	}
	g, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: good.ID()}, {Partition: bad.ID()}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cause := errors.New("producer task crashed")
	bad.Fail(cause)
	for i := range 10 {
		if err := good.EmitTo(ctx, 0, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := good.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	records, channelErrors := 0, 0
	var end error
	for end == nil {
		e, err := g.Next(ctx)
		var ce *exchange.ChannelError
		switch {
		case err == nil:
			if e.Event == nil {
				records++
			}
		case errors.As(err, &ce) && !errors.Is(err, io.EOF):
			var gf *exchange.GateFailedError
			if errors.As(err, &gf) {
				end = err
				break
			}
			channelErrors++ // a loop that logs and goes on
		default:
			t.Fatalf("Next: %v", err)
		}
	}
	if records != 10 || channelErrors != 1 {
		t.Fatalf("got %d records and %d channel errors, want 10 and 1", records, channelErrors)
	}
	if errors.Is(end, io.EOF) || !errors.Is(end, exchange.ErrRemote) || !strings.Contains(end.Error(), cause.Error()) {
		t.Fatalf("gate end %v: want the producer's failure, not io.EOF", end)
	}
	var ce *exchange.ChannelError
	if !errors.As(end, &ce) || ce.Index != 1 {
		t.Fatalf("gate end %v: want channel 1's *ChannelError inside", end)
	}
	if _, again := g.Next(ctx); again == nil || errors.Is(again, io.EOF) {
		t.Fatalf("Next after the end: %v, want the same failure", again)
	}
}
