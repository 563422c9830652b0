package exchange

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/qexchange/qexchange/exchange/wire"
)

const testSegment = MinSegmentSize

// localPartition is a partition on a node without a transport, flushed
// only by hand, whose leaks are checked when the test ends.
func localPartition(t *testing.T, subs int) (*Environment, *ResultPartition) {
	t.Helper()
	env, err := NewEnvironment(context.Background(), Config{NetworkMemory: 64 * testSegment, SegmentSize: testSegment})
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.CreatePartition(PartitionConfig{Subpartitions: subs, BufferTimeout: FlushFullBuffersOnly})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Release()
		env.Close()
		if n := env.BufferPool().Outstanding(); n != 0 {
			t.Errorf("%d network buffer(s) leaked", n)
		}
	})
	return env, p
}

// framed is record as it appears in a buffer: length-prefixed.
func framed(recs ...string) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r)))
		b = append(b, r...)
	}
	return b
}

func emit(t *testing.T, p *ResultPartition, sub int, rec string) {
	t.Helper()
	if err := p.EmitTo(context.Background(), sub, []byte(rec)); err != nil {
		t.Fatal(err)
	}
}

func wantData(t *testing.T, r pollResult, want []byte, backlog int) {
	t.Helper()
	if !r.ok || r.buf.DataType != wire.DataBuffer {
		t.Fatalf("poll: ok=%v type=%v, want a data buffer", r.ok, r.buf.DataType)
	}
	if !bytes.Equal(r.buf.Bytes(), want) {
		t.Fatalf("poll: %d bytes %q, want %q", r.buf.Len(), r.buf.Bytes(), want)
	}
	if r.backlog != backlog {
		t.Fatalf("poll: backlog %d, want %d", r.backlog, backlog)
	}
	r.buf.Release()
}

func wantEvent(t *testing.T, r pollResult, want Event) {
	t.Helper()
	if !r.ok || !r.buf.DataType.IsEvent() {
		t.Fatalf("poll: ok=%v type=%v, want event %T", r.ok, r.buf.DataType, want)
	}
	ev, err := decodeEvent(r.buf.Bytes(), r.buf.DataType)
	if err != nil || !reflect.DeepEqual(ev, want) {
		t.Fatalf("poll: event %#v (%v), want %#v", ev, err, want)
	}
	r.buf.Release()
}

func wantNothing(t *testing.T, r pollResult) {
	t.Helper()
	if r.ok {
		t.Fatalf("poll returned a %v buffer of %d bytes, want nothing", r.buf.DataType, r.buf.Len())
	}
}

// TestSubpartitionPollFlush: a partly filled segment is readable only
// after a flush, and each flush hands out exactly the bytes written since
// the previous one; the rest of the segment follows when it is finished.
func TestSubpartitionPollFlush(t *testing.T) {
	_, p := localPartition(t, 1)
	s := &p.subs[0]
	wantNothing(t, s.poll(true))
	emit(t, p, 0, "a")
	if s.available(true) {
		t.Fatal("an unflushed partial segment is available")
	}
	wantNothing(t, s.poll(true))
	s.flush()
	if !s.available(true) || s.available(false) {
		t.Fatal("a flushed segment must be available with credit and only then")
	}
	wantNothing(t, s.poll(false)) // no credit: data waits
	wantData(t, s.poll(true), framed("a"), 0)
	wantNothing(t, s.poll(true)) // nothing new since the flush
	s.flush()
	wantNothing(t, s.poll(true)) // a flush with nothing new is no buffer

	emit(t, p, 0, "bc")
	emit(t, p, 0, "def")
	s.flush()
	wantData(t, s.poll(true), framed("bc", "def"), 0)

	// Fill the segment to its end: the tail since the last flush comes
	// out when the segment is finished, counted as backlog meanwhile.
	used := len(framed("a", "bc", "def"))
	filler := string(bytes.Repeat([]byte{'x'}, testSegment-used-4))
	emit(t, p, 0, filler)
	if b := s.backlogNow(); b != 1 {
		t.Fatalf("backlog %d after a segment was filled, want 1", b)
	}
	wantData(t, s.poll(true), framed(filler), 0)
	wantNothing(t, s.poll(true))
}

// TestSubpartitionPollBacklogAndEvents: full segments count as backlog;
// events pass without credit but never overtake data in the queue, except
// priority events, which go ahead of it; an aligned barrier blocks the
// subpartition until it is resumed.
func TestSubpartitionPollBacklogAndEvents(t *testing.T) {
	_, p := localPartition(t, 1)
	s := &p.subs[0]
	big := string(bytes.Repeat([]byte{'y'}, testSegment-4)) // exactly one segment
	for range 3 {
		emit(t, p, 0, big)
	}
	if b := s.backlogNow(); b != 3 {
		t.Fatalf("backlog %d, want 3", b)
	}
	if err := p.BroadcastEvent(context.Background(), UserEvent{Payload: []byte("in order")}); err != nil {
		t.Fatal(err)
	}
	// Without credit nothing passes: the event is behind the data.
	r := s.poll(false)
	wantNothing(t, r)
	if r.backlog != 3 || !r.dataQueued {
		t.Fatalf("poll without credit: backlog %d dataQueued %v, want 3 and true", r.backlog, r.dataQueued)
	}
	// A priority event overtakes all of it and needs no credit.
	if err := p.BroadcastEvent(context.Background(), CheckpointBarrier{ID: 1, Unaligned: true}); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, s.poll(false), CheckpointBarrier{ID: 1, Unaligned: true})
	wantData(t, s.poll(true), framed(big), 2)
	wantData(t, s.poll(true), framed(big), 1)
	wantData(t, s.poll(true), framed(big), 0)
	wantEvent(t, s.poll(false), UserEvent{Payload: []byte("in order")})

	// An aligned barrier blocks what follows it until resume.
	if err := p.BroadcastEvent(context.Background(), CheckpointBarrier{ID: 2}); err != nil {
		t.Fatal(err)
	}
	emit(t, p, 0, "after")
	s.flush()
	wantEvent(t, s.poll(true), CheckpointBarrier{ID: 2})
	r = s.poll(true)
	wantNothing(t, r)
	if r.dataQueued || s.available(true) {
		t.Fatal("a blocked subpartition reports data to send")
	}
	s.resume()
	wantData(t, s.poll(true), framed("after"), 0)
}

// TestSubpartitionEndAndRelease: EndOfPartition is the last thing read and
// marks the subpartition consumed; a release drops queued data and returns
// its memory at once.
func TestSubpartitionEndAndRelease(t *testing.T) {
	env, p := localPartition(t, 2)
	emit(t, p, 0, "last")
	if err := p.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &p.subs[0]
	wantData(t, s.poll(true), framed("last"), 0)
	wantEvent(t, s.poll(false), EndOfPartition{})
	if !s.consumed {
		t.Fatal("EndOfPartition read, subpartition not marked consumed")
	}
	wantNothing(t, s.poll(true))

	// Subpartition 1 still holds its EndOfPartition; a release drops it.
	notified := 0
	if err := p.subs[1].attach(func() { notified++ }); err != nil {
		t.Fatal(err)
	}
	if err := p.subs[1].attach(func() {}); !errors.Is(err, ErrAlreadyConsumed) {
		t.Fatalf("second attach: %v, want ErrAlreadyConsumed", err)
	}
	p.subs[1].release()
	if notified != 1 {
		t.Fatalf("an attached reader was notified %d times of the release, want 1", notified)
	}
	wantNothing(t, p.subs[1].poll(true))
	if p.subs[1].pushEvent(encodeEvent(EndOfData{})) {
		t.Fatal("a released subpartition accepted an event")
	}
	p.Release()
	if n := env.BufferPool().Outstanding(); n != 0 {
		t.Fatalf("%d buffers outstanding after release", n)
	}
}

// openView opens the producer-side view of subpartition sub as a
// transport does for a PartitionRequest with the given initial credit,
// counting its availability notifications.
func openView(t *testing.T, env *Environment, p *ResultPartition, sub, credit int) (*SubpartitionView, *atomic.Int32) {
	t.Helper()
	var notified atomic.Int32
	v, err := env.partitions.OpenView(ViewRequest{Partition: p.ID(), Subpartition: sub, InitialCredit: credit, Peer: "test"},
		func(*SubpartitionView) { notified.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Release)
	return v, &notified
}

// TestViewCredit: the view spends one credit per data buffer and none per
// event, numbers every buffer, refuses credit <= 0 as a protocol error,
// and notifies the transport when new credit makes data sendable.
func TestViewCredit(t *testing.T) {
	env, p := localPartition(t, 1)
	v, notified := openView(t, env, p, 0, 1)
	big := string(bytes.Repeat([]byte{'z'}, testSegment-4))
	emit(t, p, 0, big)
	emit(t, p, 0, big)
	if notified.Load() == 0 {
		t.Fatal("view not announced as available after data arrived")
	}
	r := v.Next()
	if r.Kind != ResponseBuffer || r.Sequence != 0 || r.Backlog != 1 || r.More {
		t.Fatalf("first Next: %+v, want buffer 0, backlog 1, nothing more (credit spent)", r)
	}
	r.Buffer.Release()
	if r := v.Next(); r.Kind != ResponseNone {
		t.Fatalf("Next without credit: %+v, want nothing", r)
	}
	if err := v.AddCredit(0); !errors.Is(err, ErrProtocol) {
		t.Fatalf("AddCredit(0): %v, want ErrProtocol", err)
	}
	if err := v.AddCredit(-3); !errors.Is(err, ErrProtocol) {
		t.Fatalf("AddCredit(-3): %v, want ErrProtocol", err)
	}
	before := notified.Load()
	if err := v.AddCredit(2); err != nil {
		t.Fatal(err)
	}
	if notified.Load() == before {
		t.Fatal("credit for queued data did not notify the transport")
	}
	r = v.Next()
	if r.Kind != ResponseBuffer || r.Sequence != 1 || r.Backlog != 0 {
		t.Fatalf("after AddCredit: %+v, want buffer 1, backlog 0", r)
	}
	r.Buffer.Release()
	// Events need no credit and take the next sequence number.
	if err := p.BroadcastEvent(context.Background(), UserEvent{Payload: []byte("e")}); err != nil {
		t.Fatal(err)
	}
	r = v.Next()
	if r.Kind != ResponseBuffer || !r.Buffer.DataType.IsEvent() || r.Sequence != 2 {
		t.Fatalf("event: %+v, want an event buffer with sequence 2", r)
	}
	r.Buffer.Release()
}

// TestViewBacklogAnnouncement: without exclusive buffers (initial credit
// 0) the view announces backlog once per new value, so the consumer can
// assign floating buffers, and hands back credit it cannot use.
func TestViewBacklogAnnouncement(t *testing.T) {
	env, p := localPartition(t, 1)
	v, _ := openView(t, env, p, 0, 0)
	big := string(bytes.Repeat([]byte{'w'}, testSegment-4))
	emit(t, p, 0, big)
	r := v.Next()
	if r.Kind != ResponseBacklog || r.Backlog != 1 {
		t.Fatalf("Next: %+v, want a backlog announcement of 1", r)
	}
	if r := v.Next(); r.Kind != ResponseNone {
		t.Fatalf("Next after announcing: %+v, want nothing until the backlog changes", r)
	}
	emit(t, p, 0, big)
	if r := v.Next(); r.Kind != ResponseBacklog || r.Backlog != 2 {
		t.Fatalf("Next: %+v, want a backlog announcement of 2", r)
	}
	if err := v.AddCredit(3); err != nil {
		t.Fatal(err)
	}
	for seq := range int32(2) {
		r := v.Next()
		if r.Kind != ResponseBuffer || r.Sequence != seq || r.Buffer.Len() != testSegment {
			t.Fatalf("Next: %+v, want full buffer %d", r, seq)
		}
		r.Buffer.Release()
	}
	// One credit left, nothing queued: it goes back as an empty buffer.
	r = v.Next()
	if r.Kind != ResponseBuffer || !r.Buffer.IsZero() || r.Sequence != 2 {
		t.Fatalf("Next: %+v, want an empty buffer returning the unused credit", r)
	}
	if r := v.Next(); r.Kind != ResponseNone {
		t.Fatalf("Next: %+v, want nothing", r)
	}
}

// TestViewEndsWithError: a failed or released partition ends the view
// with one error response, then nothing.
func TestViewEndsWithError(t *testing.T) {
	env, p := localPartition(t, 2)
	v0, _ := openView(t, env, p, 0, 2)
	if _, err := env.partitions.OpenView(ViewRequest{Partition: p.ID(), Subpartition: 0, InitialCredit: 2}, func(*SubpartitionView) {}); !errors.Is(err, ErrAlreadyConsumed) {
		t.Fatalf("second view of one subpartition: %v, want ErrAlreadyConsumed", err)
	}
	if _, err := env.partitions.OpenView(ViewRequest{Partition: NewPartitionID()}, func(*SubpartitionView) {}); !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("view of an unknown partition: %v, want ErrPartitionNotFound", err)
	}
	v1, _ := openView(t, env, p, 1, 2)
	boom := errors.New("disk on fire")
	p.Fail(boom)
	r := v0.Next()
	if r.Kind != ResponseError || !errors.Is(r.Err, boom) {
		t.Fatalf("Next after Fail: %+v, want the failure", r)
	}
	if r := v0.Next(); r.Kind != ResponseNone {
		t.Fatalf("Next after the error: %+v, want nothing", r)
	}
	if r := v1.Next(); r.Kind != ResponseError || !errors.Is(r.Err, boom) {
		t.Fatalf("second view after Fail: %+v, want an error", r)
	}
}

// TestFlushRequestEndsWithItsSegment: a flush request whose data went out
// with a finished segment must not outlive it. It did, and once the
// reader had taken that segment (and an event after it), the flush of the
// writer's next segment skipped waking the reader ("already requested")
// while available() said nothing was there: that data was never read
// (found as a rare hang of TestEmitAll).
func TestFlushRequestEndsWithItsSegment(t *testing.T) {
	for _, withEvent := range []bool{false, true} {
		t.Run(fmt.Sprintf("event=%v", withEvent), func(t *testing.T) {
			_, p := localPartition(t, 1)
			s := &p.subs[0]
			notified := 0
			if err := s.attach(func() { notified++ }); err != nil {
				t.Fatal(err)
			}
			emit(t, p, 0, "a")
			s.flush() // a request for "a"
			want := framed("a")
			if withEvent {
				// The event finishes the open segment and follows it.
				if err := p.BroadcastEvent(context.Background(), UserEvent{Payload: []byte("e")}); err != nil {
					t.Fatal(err)
				}
			} else {
				// Fill the segment to its very end: it is finished, and
				// the writer has no next segment yet.
				filler := string(bytes.Repeat([]byte{'x'}, testSegment-len(want)-4))
				emit(t, p, 0, filler)
				want = framed("a", filler)
			}
			wantData(t, s.poll(true), want, 0)
			if withEvent {
				wantEvent(t, s.poll(true), UserEvent{Payload: []byte("e")})
			}
			if s.len() != 0 {
				t.Fatalf("%d entries still queued, want 0", s.len())
			}
			before := notified
			emit(t, p, 0, "b") // a new segment
			s.flush()
			if notified == before {
				t.Fatal("the flush of the next segment did not wake the reader")
			}
			if !s.available(true) {
				t.Fatal("flushed data is not available")
			}
			wantData(t, s.poll(true), framed("b"), 0)
		})
	}
}
