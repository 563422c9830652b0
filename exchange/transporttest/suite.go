package transporttest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qexchange/qexchange/exchange"
)

// Options configures the suite for one transport.
type Options struct {
	// Name is the transport's name, as registered in the environments.
	Name string
	// Factory returns the factory for one node's transport; the suite
	// calls it once per environment.
	Factory func(t testing.TB) exchange.TransportFactory
	// ScaleChannels is the channel count of the many-channels test
	// (default 512).
	ScaleChannels int
	// Records is the record count of the exactly-once test (default
	// 100,000; at least that many are needed to pass the issue).
	Records int
}

// Run runs the whole suite.
func Run(t *testing.T, o Options) {
	if o.ScaleChannels == 0 {
		o.ScaleChannels = 512
	}
	if o.Records == 0 {
		o.Records = 100_000
	}
	s := &suite{o: o}
	t.Run("ExactlyOnceInOrder", s.testExactlyOnce)
	t.Run("ExactlyOnceNoExclusiveBuffers", s.testExactlyOnceNoExclusive)
	t.Run("FlushEveryRecord", s.testFlushEveryRecord)
	t.Run("Broadcast", s.testBroadcast)
	t.Run("StalledConsumerDoesNotSlowOthers", s.testStalledConsumer)
	t.Run("CancelAndCloseRelease", s.testCancelAndClose)
	t.Run("PartitionNotFound", s.testPartitionNotFound)
	t.Run("LateProducer", s.testLateProducer)
	t.Run("ProducerFailure", s.testProducerFailure)
	t.Run("ProducerNodeDies", s.testProducerNodeDies)
	t.Run("ProducerReleasesPartition", s.testProducerReleases)
	t.Run("SecondConsumerRejected", s.testSecondConsumer)
	t.Run("Events", s.testEvents)
	t.Run("ManyChannels", s.testManyChannels)
}

type suite struct{ o Options }

// segmentSize is small so that records span segments often.
const segmentSize = 8 << 10

// env creates a node whose leaks are checked when the test ends.
func (s *suite) env(t *testing.T, memory int64) *exchange.Environment {
	t.Helper()
	if memory == 0 {
		memory = 8 << 20
	}
	e, err := exchange.NewEnvironment(context.Background(), exchange.Config{
		NetworkMemory: memory,
		SegmentSize:   segmentSize,
		Transport:     s.o.Factory(t),
	})
	if err != nil {
		t.Fatalf("NewEnvironment: %v", err)
	}
	t.Cleanup(func() {
		e.Close()
		CheckPools(t, e)
	})
	return e
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Record layout: producer u32 | subpartition u32 | seq u64 | filler |
// xxhash64 of everything before it. Minimum 24 bytes.
const recordOverhead = 24

func makeRecord(buf []byte, producer, sub int, seq uint64, size int, rng *rand.Rand) []byte {
	rec := buf[:size]
	binary.BigEndian.PutUint32(rec, uint32(producer))
	binary.BigEndian.PutUint32(rec[4:], uint32(sub))
	binary.BigEndian.PutUint64(rec[8:], seq)
	for i := 16; i < size-8; i++ {
		rec[i] = byte(seq) ^ byte(i)
	}
	binary.BigEndian.PutUint64(rec[size-8:], xxhash.Sum64(rec[:size-8]))
	return rec
}

// recordSize draws a mixed size: mostly small, some KiB, a few larger
// than a segment.
func recordSize(rng *rand.Rand) int {
	switch r := rng.IntN(1000); {
	case r < 800:
		return recordOverhead + rng.IntN(200)
	case r < 990:
		return recordOverhead + rng.IntN(4096)
	default:
		return segmentSize + rng.IntN(3*segmentSize)
	}
}

// verifier checks what one gate receives, per channel.
type verifier struct {
	specs    []exchange.ChannelSpec
	producer []int // producer index of each channel
	next     []uint64
	records  int
	bytes    int64
}

func newVerifier(specs []exchange.ChannelSpec, producer []int) *verifier {
	return &verifier{specs: specs, producer: producer, next: make([]uint64, len(specs))}
}

func (v *verifier) check(e exchange.Element) error {
	r := e.Record
	if len(r) < recordOverhead {
		return fmt.Errorf("channel %d: record of %d bytes", e.Channel, len(r))
	}
	if got := binary.BigEndian.Uint64(r[len(r)-8:]); got != xxhash.Sum64(r[:len(r)-8]) {
		return fmt.Errorf("channel %d: checksum mismatch in record %d", e.Channel, v.next[e.Channel])
	}
	p, sub, seq := int(binary.BigEndian.Uint32(r)), int(binary.BigEndian.Uint32(r[4:])), binary.BigEndian.Uint64(r[8:])
	if p != v.producer[e.Channel] || sub != v.specs[e.Channel].Subpartition {
		return fmt.Errorf("channel %d: record from producer %d subpartition %d, want %d/%d", e.Channel, p, sub, v.producer[e.Channel], v.specs[e.Channel].Subpartition)
	}
	if seq != v.next[e.Channel] {
		return fmt.Errorf("channel %d: record %d arrived, want %d (lost, duplicated or reordered)", e.Channel, seq, v.next[e.Channel])
	}
	v.next[e.Channel]++
	v.records++
	v.bytes += int64(len(r))
	return nil
}

// drain reads g to io.EOF, verifying every record; it returns the
// number of EndOfPartition events seen.
func (v *verifier) drain(ctx context.Context, g *exchange.InputGate) (int, error) {
	eops := 0
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			return eops, nil
		}
		if err != nil {
			return eops, err
		}
		if e.Event != nil {
			if _, ok := e.Event.(exchange.EndOfPartition); ok {
				eops++
			}
			continue
		}
		if err := v.check(e); err != nil {
			return eops, err
		}
	}
}

// subFromRecord is a selector that routes by the subpartition field, so
// the RecordWriter's selector path is what is tested.
type subFromRecord struct{}

func (subFromRecord) SelectChannel(r []byte, n int) int { return int(binary.BigEndian.Uint32(r[4:])) }
func (subFromRecord) IsBroadcast() bool                 { return false }

// produce writes count records spread over the partition's subpartitions
// and finishes it. It returns the per-subpartition counts.
func produce(ctx context.Context, p *exchange.ResultPartition, producer, count int, seed uint64) ([]uint64, error) {
	w := exchange.NewRecordWriter(p, subFromRecord{})
	rng := rand.New(rand.NewPCG(seed, uint64(producer)))
	buf := make([]byte, 4*segmentSize+recordOverhead)
	seqs := make([]uint64, p.Subpartitions())
	for i := 0; i < count; i++ {
		sub := rng.IntN(p.Subpartitions())
		rec := makeRecord(buf, producer, sub, seqs[sub], recordSize(rng), rng)
		if err := w.Emit(ctx, rec); err != nil {
			return seqs, fmt.Errorf("producer %d record %d: %w", producer, i, err)
		}
		seqs[sub]++
	}
	return seqs, w.Finish(ctx)
}

// topology: W partitions with R subpartitions on producer env, R gates of
// W channels on consumer env; localGate adds one gate on the producer env
// reading locally (so local channels are covered by the same checks).
func (s *suite) runTopology(t *testing.T, w, r int, gateCfg exchange.GateConfig, partCfg exchange.PartitionConfig, records int) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 90*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	parts := make([]*exchange.ResultPartition, w)
	for i := range parts {
		pc := partCfg
		pc.Subpartitions = r + 1 // the last one is read locally
		p, err := prodEnv.CreatePartition(pc)
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	type gateRun struct {
		g *exchange.InputGate
		v *verifier
	}
	var gates []gateRun
	for j := 0; j <= r; j++ {
		env, addr := consEnv, prodEnv.Addr()
		if j == r {
			env, addr = prodEnv, ""
		}
		specs := make([]exchange.ChannelSpec, w)
		producers := make([]int, w)
		for i := range specs {
			specs[i] = exchange.ChannelSpec{Partition: parts[i].ID(), Subpartition: j, Addr: addr}
			producers[i] = i
		}
		gc := gateCfg
		gc.Channels = specs
		g, err := env.CreateInputGate(gc)
		if err != nil {
			t.Fatal(err)
		}
		gates = append(gates, gateRun{g, newVerifier(specs, producers)})
	}
	var wg sync.WaitGroup
	sent := make([][]uint64, w)
	errs := make(chan error, w+len(gates))
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			sent[i], err = produce(ctx, p, i, records/w, 42)
			if err != nil {
				errs <- err
			}
		}()
	}
	for _, gr := range gates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			eops, err := gr.v.drain(ctx, gr.g)
			if err == nil && eops != w {
				err = fmt.Errorf("got %d EndOfPartition events, want %d", eops, w)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for j, gr := range gates {
		for i := range parts {
			if gr.v.next[i] != sent[i][j] {
				t.Fatalf("gate %d channel %d: received %d records, producer sent %d", j, i, gr.v.next[i], sent[i][j])
			}
		}
		total += gr.v.records
		gr.g.Close()
	}
	if total != records/w*w {
		t.Fatalf("received %d records, want %d", total, records/w*w)
	}
	for _, p := range parts {
		p.Release()
	}
	prodEnv.Close()
	consEnv.Close()
	CheckPools(t, prodEnv, consEnv)
	checkG()
}

func (s *suite) testExactlyOnce(t *testing.T) {
	s.runTopology(t, 3, 4, exchange.GateConfig{}, exchange.PartitionConfig{BufferTimeout: time.Millisecond}, s.o.Records)
}

func (s *suite) testExactlyOnceNoExclusive(t *testing.T) {
	s.runTopology(t, 2, 3, exchange.GateConfig{ExclusiveBuffers: exchange.NoExclusiveBuffers, FloatingBuffers: 4},
		exchange.PartitionConfig{BufferTimeout: time.Millisecond}, s.o.Records/4)
}

func (s *suite) testFlushEveryRecord(t *testing.T) {
	s.runTopology(t, 2, 2, exchange.GateConfig{}, exchange.PartitionConfig{BufferTimeout: exchange.FlushEveryRecord}, 5_000)
}

func (s *suite) testBroadcast(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 30*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	const subs, n = 5, 3000
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: exchange.FlushFullBuffersOnly})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, subs)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prodEnv.Addr()}
	}
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w := exchange.NewRecordWriter(p, exchange.Broadcast{})
		rec := make([]byte, 8)
		for i := range n {
			binary.BigEndian.PutUint64(rec, uint64(i))
			if err := w.Emit(ctx, rec); err != nil {
				t.Error(err)
				return
			}
		}
		w.Finish(ctx)
	}()
	next := make([]uint64, subs)
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != nil {
			continue
		}
		if got := binary.BigEndian.Uint64(e.Record); got != next[e.Channel] {
			t.Fatalf("channel %d: got record %d, want %d", e.Channel, got, next[e.Channel])
		}
		next[e.Channel]++
	}
	for i, c := range next {
		if c != n {
			t.Errorf("channel %d got %d records, want %d", i, c, n)
		}
	}
	g.Close()
	p.Release()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

// testStalledConsumer: two partitions on one node, read by two gates on
// another node over the same connection. Gate 1 never reads. Gate 2 must
// still receive many times the memory of every buffer involved, and gate
// 1's producer must be held back by credit, not by the connection.
func (s *suite) testStalledConsumer(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 60*time.Second)
	const memory = 4 << 20
	prodEnv, consEnv := s.env(t, memory), s.env(t, memory)
	p1, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g1, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p1.ID(), Addr: prodEnv.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p2.ID(), Addr: prodEnv.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	// 16x the memory of both nodes: impossible unless g2 flows while g1
	// is stalled.
	const recSize = 1000
	const flowing = 16 * 2 * memory / recSize
	var emitted1 atomic.Int64
	stall1 := make(chan struct{})
	writerDone := make(chan error, 2)
	go func() {
		w := exchange.NewRecordWriter(p1, nil)
		buf := make([]byte, recSize+recordOverhead)
		rng := rand.New(rand.NewPCG(1, 1))
		var seq uint64
		for {
			select {
			case <-stall1:
				writerDone <- w.Finish(ctx)
				return
			default:
			}
			if err := w.Emit(ctx, makeRecord(buf, 0, 0, seq, recSize, rng)); err != nil {
				writerDone <- err
				return
			}
			seq++
			emitted1.Add(1)
		}
	}()
	go func() {
		w := exchange.NewRecordWriter(p2, nil)
		buf := make([]byte, recSize)
		rng := rand.New(rand.NewPCG(2, 2))
		for i := range uint64(flowing) {
			if err := w.Emit(ctx, makeRecord(buf, 0, 0, i, recSize, rng)); err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- w.Finish(ctx)
	}()
	v2 := newVerifier(g2Specs(p2), []int{0})
	if _, err := v2.drain(ctx, g2); err != nil {
		t.Fatalf("flowing gate: %v", err)
	}
	if v2.records != flowing {
		t.Fatalf("flowing gate got %d records, want %d", v2.records, flowing)
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	// Writer 1 is blocked by backpressure: it wrote far less than the
	// flowing one, at most what the buffers along its path can hold.
	stalledBytes := emitted1.Load() * recSize
	if limit := int64(memory + memory); stalledBytes > limit {
		t.Fatalf("stalled channel's producer wrote %d bytes, more than both nodes' memory (%d): credit does not hold it back", stalledBytes, limit)
	}
	// Memory on the consumer stays within the gates' pools: at most
	// exclusive + floating buffers per gate.
	if out, limit := consEnv.BufferPool().Outstanding(), 2*(exchange.DefaultExclusiveBuffers+exchange.DefaultFloatingBuffers); out > limit {
		t.Fatalf("consumer holds %d buffers, gates allow %d", out, limit)
	}
	// Let gate 1 go: its data arrives complete and in order.
	close(stall1)
	v1 := newVerifier(g2Specs(p1), []int{0})
	drainErr := make(chan error, 1)
	go func() { _, err := v1.drain(ctx, g1); drainErr <- err }()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if err := <-drainErr; err != nil {
		t.Fatalf("stalled gate: %v", err)
	}
	if int64(v1.records) != emitted1.Load() {
		t.Fatalf("stalled gate got %d records, producer wrote %d", v1.records, emitted1.Load())
	}
	g1.Close()
	g2.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

func g2Specs(p *exchange.ResultPartition) []exchange.ChannelSpec {
	return []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: 0}}
}

// testCancelAndClose cancels gates mid-stream and closes nodes mid-stream;
// every buffer returns and no goroutine stays.
func (s *suite) testCancelAndClose(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 30*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 8, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, 8)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prodEnv.Addr()}
	}
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		w := exchange.NewRecordWriter(p, nil)
		rec := make([]byte, 3000)
		for {
			if err := w.Emit(wctx, rec); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	for range 2000 {
		if _, err := g.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	g.Close()
	if _, err := g.Next(ctx); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
	stopWriter()
	if err := <-writerDone; !errors.Is(err, context.Canceled) && !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("writer: %v", err)
	}
	p.Release()
	if err := p.EmitTo(ctx, 0, []byte("x")); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("EmitTo after Release: %v, want ErrClosed", err)
	}
	prodEnv.Close()
	consEnv.Close()
	CheckPools(t, prodEnv, consEnv)
	checkG()
}

func (s *suite) testPartitionNotFound(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 10*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	g, err := consEnv.CreateInputGate(exchange.GateConfig{
		Channels:       []exchange.ChannelSpec{{Partition: exchange.NewPartitionID(), Addr: prodEnv.Addr()}},
		InitialBackoff: time.Millisecond, MaxBackoff: 8 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Next(ctx)
	var nf *exchange.PartitionNotFoundError
	var ce *exchange.ChannelError
	if !errors.As(err, &nf) || !errors.Is(err, exchange.ErrPartitionNotFound) || !errors.As(err, &ce) || ce.Index != 0 {
		t.Fatalf("Next: %v, want a ChannelError wrapping *PartitionNotFoundError", err)
	}
	if nf.Peer != prodEnv.Addr() || nf.Waited < 15*time.Millisecond {
		t.Fatalf("error %q: want peer %s and the retries' wait (>= 15ms)", err, prodEnv.Addr())
	}
	var end *exchange.GateFailedError
	if _, err := g.Next(ctx); errors.Is(err, io.EOF) || !errors.As(err, &end) || !errors.Is(err, exchange.ErrPartitionNotFound) {
		t.Fatalf("Next after the only channel failed: %v, want a *GateFailedError holding it, not io.EOF", err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

func (s *suite) testLateProducer(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	id := exchange.PartitionIDFromName("late", 0)
	g, err := consEnv.CreateInputGate(exchange.GateConfig{
		Channels:       []exchange.ChannelSpec{{Partition: id, Addr: prodEnv.Addr()}},
		InitialBackoff: 5 * time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// The consumer is already asking; the partition appears later.
	got := make(chan error, 1)
	go func() {
		e, err := g.Next(ctx)
		if err == nil && string(e.Record) != "hello" {
			err = fmt.Errorf("got %q", e.Record)
		}
		got <- err
	}()
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{ID: id, Subpartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EmitTo(ctx, 0, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

func (s *suite) testProducerFailure(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 2, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{
		{Partition: p.ID(), Subpartition: 0, Addr: prodEnv.Addr()},
		{Partition: p2.ID(), Subpartition: 0, Addr: prodEnv.Addr()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EmitTo(ctx, 0, []byte("before")); err != nil {
		t.Fatal(err)
	}
	if e, err := g.Next(ctx); err != nil || string(e.Record) != "before" {
		t.Fatalf("Next: %q, %v", e.Record, err)
	}
	p.Fail(errors.New("disk on fire"))
	_, err = g.Next(ctx)
	var re *exchange.RemoteError
	if !errors.Is(err, exchange.ErrRemote) || !errors.As(err, &re) || re.Fatal || re.Peer != prodEnv.Addr() {
		t.Fatalf("Next: %v, want a non-fatal RemoteError from %s", err, prodEnv.Addr())
	}
	if !containsAll(err.Error(), "disk on fire") {
		t.Fatalf("error %q does not carry the producer's message", err)
	}
	// The other channel on the same connection still works.
	if err := p2.EmitTo(ctx, 0, []byte("after")); err != nil {
		t.Fatal(err)
	}
	p2.Flush()
	if e, err := g.Next(ctx); err != nil || string(e.Record) != "after" || e.Channel != 1 {
		t.Fatalf("Next on the healthy channel: %q (channel %d), %v", e.Record, e.Channel, err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

func (s *suite) testProducerNodeDies(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 3, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, 3)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prodEnv.Addr()}
	}
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := p.EmitTo(ctx, i, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := g.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	prodEnv.Close()
	failed := map[int]bool{}
	for len(failed) < 3 {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			t.Fatalf("Next after the producer died: %+v", e)
		}
		if !errors.Is(err, exchange.ErrConnectionLost) && !errors.Is(err, exchange.ErrRemote) {
			t.Fatalf("Next: %v, want ErrConnectionLost or ErrRemote", err)
		}
		if !containsAll(err.Error(), prodEnv.Addr()) {
			t.Fatalf("error %q does not name the peer %s", err, prodEnv.Addr())
		}
		failed[e.Channel] = true
	}
	if len(failed) != 3 {
		t.Fatalf("%d of 3 channels failed", len(failed))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("channels failed %v after the producer died", d)
	}
	g.Close()
	consEnv.Close()
	checkG()
}

func (s *suite) testSecondConsumer(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	spec := []exchange.ChannelSpec{{Partition: p.ID(), Addr: prodEnv.Addr()}}
	g1, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: spec})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EmitTo(ctx, 0, []byte("one")); err != nil {
		t.Fatal(err)
	}
	p.Flush()
	if e, err := g1.Next(ctx); err != nil || string(e.Record) != "one" {
		t.Fatalf("first consumer: %q, %v", e.Record, err)
	}
	g2, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: spec})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g2.Next(ctx); !errors.Is(err, exchange.ErrAlreadyConsumed) {
		t.Fatalf("second consumer: %v, want ErrAlreadyConsumed", err)
	}
	g1.Close()
	g2.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

func (s *suite) testEvents(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	var taskEvents sync.Map
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{
		Subpartitions: 2, BufferTimeout: exchange.FlushFullBuffersOnly,
		OnTaskEvent: func(sub int, ev []byte) { taskEvents.Store(sub, string(ev)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	specs := []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: 0, Addr: prodEnv.Addr()}, {Partition: p.ID(), Subpartition: 1, Addr: prodEnv.Addr()}}
	// Little credit, so that most data waits at the producer, where the
	// unaligned barrier below must overtake it.
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: specs, ExclusiveBuffers: 1, FloatingBuffers: 1})
	if err != nil {
		t.Fatal(err)
	}
	next := func() exchange.Element {
		t.Helper()
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Aligned barrier: records before it, then it, then the
	// subpartition is blocked until ResumeConsumption.
	w := exchange.NewRecordWriter(p, exchange.Forward{})
	must(t, w.Emit(ctx, []byte("r1")))
	must(t, w.BroadcastEvent(ctx, exchange.CheckpointBarrier{ID: 7, Timestamp: 1}))
	must(t, w.Emit(ctx, []byte("r2")))
	w.Flush()
	perChannel := map[int][]string{}
	for range 3 {
		e := next()
		switch ev := e.Event.(type) {
		case nil:
			perChannel[e.Channel] = append(perChannel[e.Channel], string(e.Record))
		case exchange.CheckpointBarrier:
			if ev.ID != 7 || ev.Unaligned {
				t.Fatalf("got %+v, want aligned barrier 7", ev)
			}
			perChannel[e.Channel] = append(perChannel[e.Channel], "barrier")
		default:
			t.Fatalf("unexpected event %+v", e)
		}
	}
	if fmt.Sprint(perChannel[0]) != "[r1 barrier]" || fmt.Sprint(perChannel[1]) != "[barrier]" {
		t.Fatalf("got %v, want channel 0 [r1 barrier] and channel 1 [barrier]", perChannel)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	e, err := g.Next(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after an aligned barrier, before resuming: got %+v, %v; want nothing", e, err)
	}
	must(t, g.ResumeConsumption(0))
	if e := next(); string(e.Record) != "r2" || e.Channel != 0 {
		t.Fatalf("after resume: %+v, want r2 on channel 0", e)
	}
	must(t, g.ResumeConsumption(1))

	// An unaligned barrier overtakes queued data: queue about 8 buffers
	// of records on subpartition 1 (the consumer has credit for 2 and is
	// not reading), then send it. It may reach the consumer after the
	// consumer has read what it already had, but not after the rest.
	rec := make([]byte, 1000)
	const queuedRecords = 60
	for i := range queuedRecords {
		binary.BigEndian.PutUint32(rec, uint32(i))
		must(t, p.EmitTo(ctx, 1, rec))
	}
	must(t, w.BroadcastEvent(ctx, exchange.CheckpointBarrier{ID: 8, Unaligned: true}))
	before := 0
	for {
		e := next()
		if b, ok := e.Event.(exchange.CheckpointBarrier); ok && e.Channel == 1 {
			if b.ID != 8 || !b.Unaligned {
				t.Fatalf("got %+v", b)
			}
			break
		}
		if e.Channel == 1 && e.Record != nil {
			before++
		}
	}
	if before >= queuedRecords/2 {
		t.Fatalf("unaligned barrier arrived after %d of %d queued records: it did not overtake", before, queuedRecords)
	}
	// Drain the rest in order; channel 0 also got the barrier.
	p.Flush()
	for got := before; got < queuedRecords; {
		e := next()
		if e.Channel == 1 && e.Record != nil {
			if n := int(binary.BigEndian.Uint32(e.Record)); n != got {
				t.Fatalf("record %d after the barrier, want %d", n, got)
			}
			got++
		}
	}

	// Task events travel from consumer to producer.
	must(t, g.SendTaskEvent([]byte("iteration done")))
	waitFor(t, ctx, func() bool {
		a, _ := taskEvents.Load(0)
		b, _ := taskEvents.Load(1)
		return a == "iteration done" && b == "iteration done"
	})

	// EndOfData and its acknowledgement. As in Flink, the producer
	// finishes only after the acknowledgement: finishing earlier lets one
	// channel's EndOfPartition (which releases that channel) be read
	// before another channel's EndOfData on transports that deliver
	// channels independently, and the acknowledgement could then not be
	// sent on the released channel.
	must(t, p.EndOfData(ctx))
	eod := 0
	for eod < 2 {
		e := next()
		if _, ok := e.Event.(exchange.EndOfData); ok {
			eod++
		}
	}
	select {
	case <-p.AllRecordsProcessed():
		t.Fatal("AllRecordsProcessed before the consumer acknowledged")
	default:
	}
	must(t, g.AckAllRecordsProcessed())
	select {
	case <-p.AllRecordsProcessed():
	case <-ctx.Done():
		t.Fatal("acknowledgement did not reach the producer")
	}
	must(t, p.Finish(ctx))
	g.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

func (s *suite) testManyChannels(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 120*time.Second)
	n := s.o.ScaleChannels
	mem := int64(n*(exchange.DefaultExclusiveBuffers)+64) * segmentSize
	prodEnv, consEnv := s.env(t, max(mem, 8<<20)), s.env(t, max(mem, 8<<20))
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: n, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, n)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prodEnv.Addr()}
	}
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	const perChannel = 20
	go func() {
		rec := make([]byte, 100)
		for k := range perChannel {
			for i := range n {
				binary.BigEndian.PutUint32(rec, uint32(k))
				if err := p.EmitTo(ctx, i, rec); err != nil {
					t.Error(err)
					return
				}
			}
		}
		p.Finish(ctx)
	}()
	next := make([]int, n)
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != nil {
			continue
		}
		if k := int(binary.BigEndian.Uint32(e.Record)); k != next[e.Channel] {
			t.Fatalf("channel %d: record %d, want %d", e.Channel, k, next[e.Channel])
		}
		next[e.Channel]++
	}
	for i, c := range next {
		if c != perChannel {
			t.Fatalf("channel %d got %d records, want %d", i, c, perChannel)
		}
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or ctx ends: for effects that arrive
// asynchronously with no event to wait on.
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached before the deadline")
		case <-time.After(time.Millisecond):
		}
		runtime.Gosched()
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// testProducerReleases: a partition released by its producer while a
// consumer reads it fails that consumer's channel instead of leaving it
// waiting forever.
func (s *suite) testProducerReleases(t *testing.T) {
	checkG := CheckGoroutines(t)
	ctx := testContext(t, 20*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p, err := prodEnv.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	g, err := consEnv.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prodEnv.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	must(t, p.EmitTo(ctx, 0, []byte("first")))
	p.Flush()
	if e, err := g.Next(ctx); err != nil || string(e.Record) != "first" {
		t.Fatalf("Next: %q, %v", e.Record, err)
	}
	p.Release()
	if _, err := g.Next(ctx); !errors.Is(err, exchange.ErrRemote) {
		t.Fatalf("Next after the producer released the partition: %v, want ErrRemote", err)
	}
	g.Close()
	prodEnv.Close()
	consEnv.Close()
	checkG()
}
