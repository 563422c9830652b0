package wire_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/qexchange/qexchange/exchange/wire"
)

// manyMessages returns n messages drawn from sampleMessages.
func manyMessages(n int, seed uint64) []wire.Message {
	samples := sampleMessages()
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]wire.Message, n)
	for i := range out {
		out[i] = samples[rng.IntN(len(samples))]
	}
	return out
}

// readAll reads every message from r, reading payloads (discarding every
// third), and checks them against want.
func readAll(t *testing.T, r *wire.Reader, want []wire.Message, opts wire.Options) {
	t.Helper()
	for i, w := range want {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		assertSame(t, m, w, opts.StreamMode)
		if br, ok := m.(*wire.BufferResponse); ok {
			if r.PendingPayload() != int(br.Size) {
				t.Fatalf("PendingPayload %d, Size %d", r.PendingPayload(), br.Size)
			}
			if i%3 == 2 {
				if err := r.DiscardPayload(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			p := make([]byte, br.Size)
			if err := r.ReadPayload(p); err != nil {
				t.Fatalf("payload %d: %v", i, err)
			}
			if !bytes.Equal(p, payloadFor(br.Size)) {
				t.Fatalf("payload %d corrupted", i)
			}
		}
	}
	if m, err := r.Next(); err != io.EOF {
		t.Fatalf("after last message: %v, %v; want io.EOF", m, err)
	}
	if r.Buffered() != 0 {
		t.Fatalf("Buffered = %d at EOF", r.Buffered())
	}
}

func TestReaderStream(t *testing.T) {
	wrappers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"onebyte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"dataerr", iotest.DataErrReader},
	}
	for _, opts := range modes {
		msgs := manyMessages(500, 7)
		data := encodeStream(msgs, opts)
		for _, w := range wrappers {
			t.Run(modeName(opts)+"/"+w.name, func(t *testing.T) {
				r := wire.NewReader(w.wrap(bytes.NewReader(data)), opts)
				readAll(t, r, msgs, opts)
			})
		}
	}
}

func TestReaderEveryMessageOneByte(t *testing.T) {
	for _, opts := range modes {
		msgs := sampleMessages()
		r := wire.NewReader(iotest.OneByteReader(bytes.NewReader(encodeStream(msgs, opts))), opts)
		readAll(t, r, msgs, opts)
	}
}

func TestReaderLargeFrames(t *testing.T) {
	// Frames larger than the Reader's bufio buffer: big payloads and a
	// big task event (read through the Reader's scratch buffer).
	opts := wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(1 << 20)}
	ev := bytes.Repeat([]byte("event!"), 50000) // 300 kB
	msgs := []wire.Message{
		wire.BufferResponse{ReceiverID: recvA, Size: 1 << 20},
		wire.TaskEventRequest{PartitionID: partA, ReceiverID: recvA, Event: ev},
		wire.AddCredit{ReceiverID: recvA, Credit: 1},
		wire.BufferResponse{ReceiverID: recvA, Size: 100_000},
		wire.TaskEventRequest{PartitionID: partA, ReceiverID: recvA, Event: ev[:70000]},
	}
	for _, o := range []wire.Options{opts, {StreamMode: true, MaxFrameSize: opts.MaxFrameSize}} {
		data := encodeStream(msgs, o)
		readAll(t, wire.NewReader(bytes.NewReader(data), o), msgs, o)
		readAll(t, wire.NewReader(iotest.HalfReader(bytes.NewReader(data)), o), msgs, o)
	}
}

func TestReaderPayloadProtocol(t *testing.T) {
	opts := wire.Options{}
	data := encodeStream([]wire.Message{
		wire.BufferResponse{ReceiverID: recvA, Sequence: 1, Size: 10},
		wire.BufferResponse{ReceiverID: recvA, Sequence: 2, Size: 0},
		wire.AddCredit{ReceiverID: recvA, Credit: 2},
	}, opts)
	r := wire.NewReader(bytes.NewReader(data), opts)
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.(*wire.BufferResponse).Sequence != 1 {
		t.Fatal("wrong message")
	}
	// Next before the payload: misuse, no state change.
	if _, err := r.Next(); !errors.Is(err, wire.ErrPayloadPending) {
		t.Fatalf("got %v, want ErrPayloadPending", err)
	}
	if err := r.ReadPayload(make([]byte, 9)); !errors.Is(err, wire.ErrPayloadSize) {
		t.Fatalf("got %v, want ErrPayloadSize", err)
	}
	if err := r.ReadPayload(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := r.ReadPayload(make([]byte, 10)); !errors.Is(err, wire.ErrNoPayload) {
		t.Fatalf("got %v, want ErrNoPayload", err)
	}
	// Size 0: nothing pending, Next may follow directly.
	m, err = r.Next()
	if err != nil || m.(*wire.BufferResponse).Sequence != 2 || r.PendingPayload() != 0 {
		t.Fatalf("%v %v", m, err)
	}
	if err := r.ReadPayload(nil); err != nil {
		t.Fatal(err)
	}
	if err := r.DiscardPayload(); err != nil {
		t.Fatal(err)
	}
	if m, err = r.Next(); err != nil || m.ID() != wire.IDAddCredit {
		t.Fatalf("%v %v", m, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal(err)
	}
}

func TestReaderReuse(t *testing.T) {
	// Messages are reused: the second AddCredit overwrites the first.
	opts := wire.Options{}
	data := encodeStream([]wire.Message{wire.AddCredit{ReceiverID: recvA, Credit: 1}, wire.AddCredit{ReceiverID: recvA, Credit: 2}}, opts)
	r := wire.NewReader(bytes.NewReader(data), opts)
	m1, _ := r.Next()
	m2, _ := r.Next()
	if m1 != m2 || m1.(*wire.AddCredit).Credit != 2 {
		t.Fatal("Reader should reuse its message structs")
	}
	r.Reset(bytes.NewReader(data))
	if m, err := r.Next(); err != nil || m.(*wire.AddCredit).Credit != 1 {
		t.Fatalf("after Reset: %v %v", m, err)
	}
}
