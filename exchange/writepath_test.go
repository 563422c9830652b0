package exchange_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

// TestConcurrentFlushEmitRelease runs the writer's fast path (through
// EmitTo, Emit and EmitAll) against
// everything that may touch its segments from other goroutines: the
// flusher (1 ms), explicit Flush and FlushSubpartition calls, a reader, and
// finally Release while the writer is still emitting or blocked on
// buffers. Under -race it checks that no write position is shared without
// synchronisation; after it, every buffer must be back in the pool and
// every record read must be intact and in order.
func TestConcurrentFlushEmitRelease(t *testing.T) {
	for _, subs := range []int{100, 4096} {
		t.Run(fmt.Sprintf("subpartitions=%d", subs), func(t *testing.T) { testConcurrentFlushEmitRelease(t, subs) })
	}
}

func testConcurrentFlushEmitRelease(t *testing.T, subs int) {
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := exchange.NewEnvironment(ctx, exchange.Config{SegmentSize: 4096, NetworkMemory: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// A reader on a few channels; the others fill up, so the writer ends
	// up blocked on buffers unless Release comes first.
	read := min(subs, 16)
	g := localGate(t, env, p, upTo(read)...)

	emitted := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		// Round r writes record r to every subpartition in turn, through
		// each way in to the fast path: EmitTo, Emit and EmitAll (the
		// round-robin selector starts every round at 0).
		w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
		rec := make([]byte, 8)
		round := make([][]byte, subs)
		for i := range round {
			round[i] = rec
		}
		for r := 0; ; r++ {
			binary.BigEndian.PutUint64(rec, uint64(r))
			var err error
			switch r % 3 {
			case 0:
				for sub := 0; sub < subs && err == nil; sub++ {
					err = p.EmitTo(ctx, sub, rec)
				}
			case 1:
				for sub := 0; sub < subs && err == nil; sub++ {
					err = w.Emit(ctx, rec)
				}
			case 2:
				_, err = w.EmitAll(ctx, round)
			}
			if err != nil {
				writerDone <- err
				return
			}
			if r == 20 {
				close(emitted)
			}
		}
	}()
	stopFlushing := make(chan struct{})
	var flushers sync.WaitGroup
	flushers.Add(1)
	go func() {
		defer flushers.Done()
		for k := 0; ; k++ {
			select {
			case <-stopFlushing:
				return
			default:
			}
			if k%2 == 0 {
				p.Flush()
			} else if err := p.FlushSubpartition(k % subs); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	readerDone := make(chan int, 1)
	readSome := make(chan struct{})
	go func() {
		next := make([]uint64, read)
		n := 0
		for {
			e, err := g.Next(ctx)
			if err != nil {
				readerDone <- n
				return
			}
			if e.Event != nil {
				continue
			}
			if got := binary.BigEndian.Uint64(e.Record); len(e.Record) != 8 || got != next[e.Channel] {
				t.Errorf("channel %d: record %d (%d bytes), want %d", e.Channel, got, len(e.Record), next[e.Channel])
				readerDone <- n
				return
			}
			next[e.Channel]++
			n++
			if n == 100 {
				close(readSome)
			}
		}
	}()

	for _, c := range []chan struct{}{emitted, readSome} {
		select {
		case <-c:
		case err := <-writerDone:
			t.Fatalf("writer stopped early: %v", err)
		case n := <-readerDone:
			t.Fatalf("reader stopped after %d records", n)
		}
	}
	p.Release()
	if err := <-writerDone; !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("writer after Release: %v, want ErrClosed", err)
	}
	close(stopFlushing)
	flushers.Wait()
	g.Close()
	<-readerDone
	env.Close()
	transporttest.CheckPools(t, env)
	checkG()
}

// TestReleaseWithBlockedWriter: a writer waiting for buffers lets go of
// the partition, so Release from another goroutine returns every buffer
// and the writer gets ErrClosed.
func TestReleaseWithBlockedWriter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SegmentSize: 4096})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 2, MinBuffers: 2, MaxBuffers: 3, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	writerDone := make(chan error, 1)
	go func() {
		rec := make([]byte, 1000)
		for i := 0; ; i++ {
			if err := p.EmitTo(ctx, i%2, rec); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	waitBackpressured(t, p, writerDone)
	p.Release()
	if err := <-writerDone; !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("blocked writer after Release: %v, want ErrClosed", err)
	}
	if n := env.BufferPool().Outstanding(); n != 0 {
		t.Fatalf("%d buffers outstanding after Release", n)
	}
}

// TestReleaseWithIdleWriter: partially filled segments of a writer that
// stopped writing (4096 of them) go back to the pool when another
// goroutine releases the partition.
func TestReleaseWithIdleWriter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SegmentSize: 4096, NetworkMemory: 64 << 20})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 4096, BufferTimeout: exchange.FlushFullBuffersOnly})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * 4096 {
		if err := p.EmitTo(ctx, i%4096, []byte("idle")); err != nil {
			t.Fatal(err)
		}
	}
	if n := env.BufferPool().Outstanding(); n < 4096 {
		t.Fatalf("%d buffers in use, want one per subpartition", n)
	}
	released := make(chan struct{})
	go func() {
		p.Release()
		close(released)
	}()
	<-released
	if n := env.BufferPool().Outstanding(); n != 0 {
		t.Fatalf("%d buffers outstanding after Release", n)
	}
	if err := p.EmitTo(ctx, 0, []byte("late")); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("EmitTo after Release: %v, want ErrClosed", err)
	}
}

// TestIdleWriterFlushedAt4096: the flusher makes the records of a writer
// that has stopped writing readable, in a partition of 4096
// subpartitions.
func TestIdleWriterFlushedAt4096(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SegmentSize: 4096, NetworkMemory: 64 << 20})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 4096, BufferTimeout: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	chans := []int{0, 1, 2047, 4095}
	g := localGate(t, env, p, chans...)
	for _, c := range chans {
		for k := range 3 {
			if err := p.EmitTo(ctx, c, []byte{byte(c), byte(k)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := make([]int, len(chans))
	for range 3 * len(chans) {
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatalf("after %v records: %v", got, err)
		}
		c := chans[e.Channel]
		if len(e.Record) != 2 || e.Record[0] != byte(c) || int(e.Record[1]) != got[e.Channel] {
			t.Fatalf("channel %d: record %v, want [%d %d]", e.Channel, e.Record, byte(c), got[e.Channel])
		}
		got[e.Channel]++
	}
}

// TestFlushEveryRecordDeliversEachRecord: with FlushEveryRecord a reader
// gets each record before the writer writes the next one, unicast and
// broadcast.
func TestFlushEveryRecordDeliversEachRecord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{})
	const subs = 4
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: exchange.FlushEveryRecord})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	g := localGate(t, env, p, upTo(subs)...)
	for i := range 40 {
		rec := []byte{byte(i)}
		if err := p.EmitTo(ctx, i%subs, rec); err != nil {
			t.Fatal(err)
		}
		e, err := g.Next(ctx)
		if err != nil || e.Channel != i%subs || len(e.Record) != 1 || e.Record[0] != byte(i) {
			t.Fatalf("record %d: channel %d %v, %v", i, e.Channel, e.Record, err)
		}
	}
	for i := range 10 {
		if err := p.BroadcastRecord(ctx, []byte{byte(100 + i)}); err != nil {
			t.Fatal(err)
		}
		seen := make([]bool, subs)
		for range subs {
			e, err := g.Next(ctx)
			if err != nil || len(e.Record) != 1 || e.Record[0] != byte(100+i) || seen[e.Channel] {
				t.Fatalf("broadcast %d: channel %d %v, %v", i, e.Channel, e.Record, err)
			}
			seen[e.Channel] = true
		}
	}
}

// TestNextAfterCloseMidBuffer: Close while Next is in the middle of a
// buffer returns the buffer; Next then reports ErrClosed, not the records
// left in it.
func TestNextAfterCloseMidBuffer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, p, g := flushedByHand(t, exchange.Config{})
	for range 100 {
		if err := p.EmitTo(ctx, 0, []byte("12345678")); err != nil {
			t.Fatal(err)
		}
	}
	p.Flush()
	for range 10 {
		if e, err := g.Next(ctx); err != nil || string(e.Record) != "12345678" {
			t.Fatalf("Next: %q, %v", e.Record, err)
		}
	}
	closed := make(chan struct{})
	go func() {
		g.Close()
		close(closed)
	}()
	<-closed
	if _, err := g.Next(ctx); !errors.Is(err, exchange.ErrClosed) {
		t.Fatalf("Next after Close: %v, want ErrClosed", err)
	}
}

// TestEmitAll: EmitAll writes what Emit would, in order, reports how many
// records it wrote when one fails, and honours a broadcast selector.
func TestEmitAll(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const maxRecord = 64 << 10
	env := localEnv(t, exchange.Config{SegmentSize: 4096, MaxRecordSize: maxRecord})
	const subs = 3
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g := localGate(t, env, p, upTo(subs)...)
	// Records of every size up to two segments, so batches span segments
	// and wait for buffers.
	var records [][]byte
	for i := range 600 {
		rec := make([]byte, 8+(i*37)%8000)
		binary.BigEndian.PutUint64(rec, uint64(i))
		records = append(records, rec)
	}
	w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
	done := make(chan error, 1)
	go func() {
		for k := 0; k < len(records); k += 50 {
			n, err := w.EmitAll(ctx, records[k:k+50])
			if err != nil || n != 50 {
				done <- fmt.Errorf("EmitAll: %d, %v", n, err)
				cancel() // the reader stops waiting
				return
			}
		}
		done <- nil
	}()
	next := make([]int, subs)
	for range records {
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatal(err, <-done)
		}
		want := next[e.Channel]*subs + e.Channel
		if got := int(binary.BigEndian.Uint64(e.Record)); got != want || len(e.Record) != len(records[want]) {
			t.Fatalf("channel %d: record %d of %d bytes, want %d of %d", e.Channel, got, len(e.Record), want, len(records[want]))
		}
		next[e.Channel]++
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	big := make([]byte, maxRecord+1)
	if n, err := w.EmitAll(ctx, [][]byte{[]byte("a"), []byte("b"), big, []byte("c")}); n != 2 || !errors.Is(err, exchange.ErrRecordTooLarge) {
		t.Fatalf("EmitAll with a record too large third: %d, %v; want 2, ErrRecordTooLarge", n, err)
	}
	bw := exchange.NewRecordWriter(p, exchange.Broadcast{})
	if n, err := bw.EmitAll(ctx, [][]byte{[]byte("x"), []byte("y")}); n != 2 || err != nil {
		t.Fatalf("broadcast EmitAll: %d, %v", n, err)
	}
	got := map[int][]string{}
	for len(got[0])+len(got[1])+len(got[2]) < 2+2*subs {
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[e.Channel] = append(got[e.Channel], string(e.Record))
	}
	for c := range subs {
		recs := got[c]
		if n := len(recs); n < 2 || recs[n-2] != "x" || recs[n-1] != "y" {
			t.Fatalf("channel %d got %q, want it to end with the broadcast x, y", c, recs)
		}
	}
}

// TestFlushAfterFinishedSegmentNotifies: a flush whose data went out with
// a segment that then filled up must not make the next flush skip waking
// the reader (the flush request was stale, the new segment's data
// unpublished until that next flush).
func TestFlushAfterFinishedSegmentNotifies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, p, g := flushedByHand(t, exchange.Config{SegmentSize: 4096})
	rec := make([]byte, 8)
	emit := func(from, to int) {
		for i := from; i < to; i++ {
			binary.BigEndian.PutUint64(rec, uint64(i))
			if err := p.EmitTo(ctx, 0, rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	read := func(from, to int) {
		for i := from; i < to; i++ {
			short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
			e, err := g.Next(short)
			cancelShort()
			if err != nil || binary.BigEndian.Uint64(e.Record) != uint64(i) {
				t.Fatalf("record %d: %v, %v", i, e.Record, err)
			}
		}
	}
	emit(0, 100)
	p.Flush()
	emit(100, 400) // 12 bytes a record: the 4 KiB segment fills at 341
	read(0, 341)
	// The reader takes the rest of the full segment and finds nothing
	// readable after it.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	e, err := g.Next(short)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before the second flush: %v, %v; want nothing", e.Record, err)
	}
	p.Flush()
	read(341, 400)
}

// localGate is a gate in env over subpartitions subs of p, closed when the
// test ends.
func localGate(t *testing.T, env *exchange.Environment, p *exchange.ResultPartition, subs ...int) *exchange.InputGate {
	t.Helper()
	specs := make([]exchange.ChannelSpec, len(subs))
	for i, sub := range subs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: sub}
	}
	g, err := env.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// upTo is 0, 1, ..., n-1.
func upTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// flushedByHand is a partition of one subpartition with no buffer
// timeout, in a local environment made with cfg, and a gate reading it.
func flushedByHand(t *testing.T, cfg exchange.Config) (*exchange.Environment, *exchange.ResultPartition, *exchange.InputGate) {
	t.Helper()
	env := localEnv(t, cfg)
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: exchange.FlushFullBuffersOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Release)
	return env, p, localGate(t, env, p, 0)
}

// TestNextBatch: NextBatch hands out the same elements as Next, in order,
// a buffer's worth at a time at most, stops when fn says so, and ends
// like Next (events, then io.EOF; ErrClosed after Close).
func TestNextBatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SegmentSize: 4096})
	const subs = 2
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g := localGate(t, env, p, upTo(subs)...)
	const records = 3000 // several segments per channel, some records spanning two
	go func() {
		rec := make([]byte, 8, 100)
		for i := range records {
			binary.BigEndian.PutUint64(rec, uint64(i))
			if err := p.EmitTo(ctx, i%subs, rec[:8+i%90]); err != nil {
				t.Error(err)
				return
			}
		}
		if err := p.Finish(ctx); err != nil {
			t.Error(err)
		}
	}()
	next := [subs]int{0, 1}
	var events, batches, stops int
	for {
		n := 0
		err := g.NextBatch(ctx, func(e exchange.Element) bool {
			n++
			if e.Event != nil {
				events++
				return true
			}
			want := next[e.Channel]
			if got := int(binary.BigEndian.Uint64(e.Record)); got != want || len(e.Record) != 8+want%90 {
				t.Fatalf("channel %d: record %d of %d bytes, want %d of %d", e.Channel, got, len(e.Record), want, 8+want%90)
			}
			next[e.Channel] += subs
			if n == 7 { // stop early now and then; the rest must follow
				stops++
				return false
			}
			return true
		})
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("NextBatch returned nil without an element")
		}
		batches++
	}
	if next[0] != records || next[1] != records+1 || events != subs {
		t.Fatalf("got up to records %v and %d events, want %d and %d", next, events, records, subs)
	}
	if stops == 0 || batches >= records {
		t.Fatalf("%d batches with %d early stops for %d records: not batching", batches, stops, records)
	}
	g.Close()
	if err := g.NextBatch(ctx, func(exchange.Element) bool { return true }); !errors.Is(err, exchange.ErrClosed) && !errors.Is(err, io.EOF) {
		t.Fatalf("NextBatch after Close: %v", err)
	}
}

// TestCancelledSpanningRecordFailsPartition: an Emit whose context ends
// while its record spans segments has put part of the record in the
// queue. The partition fails, so that its consumer gets that error rather
// than a record cut by whatever the writer or Finish sends next; a record
// cancelled before any of its bytes were written leaves the partition
// usable.
func TestCancelledSpanningRecordFailsPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SegmentSize: 4096})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, MinBuffers: 2, MaxBuffers: 2, BufferTimeout: exchange.FlushFullBuffersOnly})
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads: two segments fill, the third is never granted.
	emitCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.EmitTo(emitCtx, 0, make([]byte, 3*4096)) }()
	waitBackpressured(t, p, done)
	stop()
	err = <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cut Emit: %v, want context.Canceled", err)
	}
	if err := p.EmitTo(ctx, 0, []byte("next")); err == nil {
		t.Fatal("Emit after a cut record succeeded")
	}
	if err := p.Finish(ctx); err == nil {
		t.Fatal("Finish after a cut record succeeded")
	}
	g := localGate(t, env, p, 0)
	for {
		e, err := g.Next(ctx)
		if err == nil {
			if e.Record != nil {
				t.Fatalf("consumer got a record of %d bytes from a partition whose only record was cut", len(e.Record))
			}
			continue
		}
		if errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "record cut") {
			t.Fatalf("consumer of a partition with a cut record: %v, want the writer's error", err)
		}
		break
	}
}

// TestCancelledBeforeRecordKeepsPartition: an Emit cancelled while it
// waits for its first segment wrote nothing, so the partition goes on.
func TestCancelledBeforeRecordKeepsPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := localEnv(t, exchange.Config{SegmentSize: 4096})
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, MinBuffers: 2, MaxBuffers: 2, BufferTimeout: exchange.FlushFullBuffersOnly})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // each fills one of the two segments
		if err := p.EmitTo(ctx, 0, make([]byte, 4096-4)); err != nil {
			t.Fatal(err)
		}
	}
	cancelled, stop := context.WithCancel(ctx)
	stop()
	if err := p.EmitTo(cancelled, 0, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Emit without a free segment and a cancelled context: %v", err)
	}
	g := localGate(t, env, p, 0)
	for i := range 2 {
		e, err := g.Next(ctx)
		if err != nil || len(e.Record) != 4096-4 {
			t.Fatalf("record %d: %d bytes, %v", i, len(e.Record), err)
		}
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatalf("Finish after a record cancelled before its first byte: %v", err)
	}
	for {
		if _, err := g.Next(ctx); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("end: %v, want io.EOF", err)
			}
			break
		}
	}
}

// waitBackpressured returns once p's writer is blocked on buffers (the
// backpressure clock runs); the writer must not end before that.
func waitBackpressured(t *testing.T, p *exchange.ResultPartition, writerDone <-chan error) {
	t.Helper()
	for p.BufferPool().BackpressuredTime() == 0 {
		select {
		case err := <-writerDone:
			t.Fatalf("writer ended before blocking: %v", err)
		case <-time.After(time.Millisecond): // bounded poll of a metric, not synchronisation of data
		}
	}
}

// TestEventsFromAnotherGoroutine: events and Finish may come from another
// goroutine than the records (a checkpoint coordinator injecting
// barriers): they keep the record writer's lock-free path out while they
// run. Every record and event must arrive once, in order per channel;
// under -race, nothing of the writer's may be shared unsynchronised.
func TestEventsFromAnotherGoroutine(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := transporttest.NewEnv(t, ctx, exchange.Config{SegmentSize: 4096, NetworkMemory: 8 << 20})
	const subs, events = 4, 200
	p, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: subs, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	g := localGate(t, env, p, upTo(subs)...)

	type tally struct{ records, events int }
	readerDone := make(chan []tally, 1)
	go func() {
		got := make([]tally, subs)
		defer func() { readerDone <- got }()
		for {
			e, err := g.Next(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Error(err)
				}
				return
			}
			c := &got[e.Channel]
			switch ev := e.Event.(type) {
			case nil:
				if v := binary.BigEndian.Uint64(e.Record); v != uint64(c.records) {
					t.Errorf("channel %d: record %d, want %d", e.Channel, v, c.records)
					return
				}
				c.records++
			case exchange.UserEvent:
				if int(ev.Payload[0]) != c.events%256 {
					t.Errorf("channel %d: event %d, want %d", e.Channel, ev.Payload[0], c.events%256)
					return
				}
				c.events++
			}
		}
	}()

	stop := make(chan struct{})
	emitted := make(chan int, 1)
	var progress atomic.Int64
	go func() {
		w := exchange.NewRecordWriter(p, &exchange.RoundRobin{})
		rec := make([]byte, 8)
		i := 0
		defer func() { emitted <- i }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			binary.BigEndian.PutUint64(rec, uint64(i/subs))
			if err := w.Emit(ctx, rec); err != nil {
				t.Error(err)
				return
			}
			i++
			progress.Store(int64(i))
		}
	}()
	for k := range events {
		// Each event lands among records: the writer is busy in between.
		for progress.Load() < int64(k+1)*100 {
			if ctx.Err() != nil {
				t.Fatal("the writer stopped")
			}
			runtime.Gosched()
		}
		if err := p.BroadcastEvent(ctx, exchange.UserEvent{Payload: []byte{byte(k)}}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	n := <-emitted
	// Finish from this goroutine, not the writer's.
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-readerDone
	total := 0
	for i, c := range got {
		total += c.records
		if c.events != events {
			t.Errorf("channel %d: %d events, want %d", i, c.events, events)
		}
	}
	if total != n {
		t.Errorf("read %d records, emitted %d", total, n)
	}
	g.Close()
	checkG()
}
