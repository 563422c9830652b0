package wire_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qexchange/qexchange/exchange/wire"
)

func TestRoundTripDecode(t *testing.T) {
	for _, opts := range modes {
		for i, m := range sampleMessages() {
			t.Run(modeName(opts)+"/"+name(m, i), func(t *testing.T) {
				f := wire.AppendFrame(nil, m, opts)
				if got, want := len(f), wire.FrameLen(m, opts); got+payloadSize(m) != want {
					t.Fatalf("AppendFrame wrote %d bytes (+%d payload), FrameLen says %d", got, payloadSize(m), want)
				}
				length, id, err := wire.ParseHeader(f, opts)
				if err != nil {
					t.Fatal(err)
				}
				if id != m.ID() {
					t.Fatalf("id %v, want %v", id, m.ID())
				}
				if length != len(f)+payloadSize(m) {
					t.Fatalf("length %d, want %d", length, len(f)+payloadSize(m))
				}
				body := append(f[wire.HeaderSize:], payloadFor(int32(payloadSize(m)))...)
				got, err := wire.DecodeBody(id, body, opts.StreamMode)
				if err != nil {
					t.Fatal(err)
				}
				assertSame(t, got, m, opts.StreamMode)
				if err := wire.Validate(m, opts); err != nil {
					t.Fatalf("Validate: %v", err)
				}
				// Pointer and value encode the same.
				if f2 := wire.AppendFrame([]byte("prefix"), ptrTo(m), opts); !bytes.Equal(f2[6:], f) {
					t.Fatalf("pointer encoding differs")
				}
				// Receiver.
				rid, ok := wire.Receiver(m)
				switch v := m.(type) {
				case wire.Hello, wire.CloseRequest:
					if ok {
						t.Fatal("Receiver ok for message without receiverId")
					}
				case wire.ErrorResponse:
					if ok == v.Fatal {
						t.Fatal("Receiver ok mismatch for ErrorResponse")
					}
				default:
					if !ok || rid != recvA {
						t.Fatalf("Receiver = %v, %v", rid, ok)
					}
				}
			})
		}
	}
}

func payloadSize(m wire.Message) int {
	if br, ok := value(m).(wire.BufferResponse); ok {
		return int(br.Size)
	}
	return 0
}

func ptrTo(m wire.Message) wire.Message {
	switch v := m.(type) {
	case wire.Hello:
		return &v
	case wire.BufferResponse:
		return &v
	case wire.ErrorResponse:
		return &v
	case wire.PartitionRequest:
		return &v
	case wire.TaskEventRequest:
		return &v
	case wire.CancelPartitionRequest:
		return &v
	case wire.CloseRequest:
		return &v
	case wire.AddCredit:
		return &v
	case wire.ResumeConsumption:
		return &v
	case wire.AckAllUserRecordsProcessed:
		return &v
	case wire.BacklogAnnouncement:
		return &v
	case wire.NewBufferSize:
		return &v
	}
	panic("unknown message")
}

func TestReceiverIDOmittedInStreamMode(t *testing.T) {
	for _, m := range sampleMessages() {
		tcp := wire.AppendFrame(nil, m, wire.Options{})
		quic := wire.AppendFrame(nil, m, wire.Options{StreamMode: true})
		diff := len(tcp) - len(quic)
		want := 16
		switch v := m.(type) {
		case wire.Hello, wire.CloseRequest:
			want = 0
		case wire.ErrorResponse:
			if v.Fatal {
				want = 0
			}
		}
		if diff != want {
			t.Errorf("%v: tcp frame - stream frame = %d bytes, want %d", m.ID(), diff, want)
		}
	}
}

func TestFrameLayout(t *testing.T) {
	// Check one encoding byte by byte against the documented layout.
	m := wire.BufferResponse{ReceiverID: recvA, Sequence: 0x01020304, Backlog: 5, DataType: wire.EventBuffer, Compressed: true, Size: 3}
	got := wire.AppendFrame(nil, m, wire.Options{})
	want := []byte{0, 0, 0, 39 + 3, 0xBA, 0xDC, 0x0F, 0xFE, 0}
	want = append(want, recvA[:]...)
	want = append(want, 1, 2, 3, 4, 0, 0, 0, 5, 1, 1, 0, 0, 0, 3)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	if wire.BufferResponseHeaderLen(false) != wire.BufferResponseHeaderMax || wire.BufferResponseHeaderLen(true) != wire.BufferResponseHeaderMax-16 {
		t.Fatal("BufferResponseHeaderLen")
	}
	h := wire.AppendFrame(nil, wire.Hello{Version: 1, Features: 2, MaxFrameSize: 0x10000}, wire.Options{})
	wantH := []byte{0, 0, 0, 27, 0xBA, 0xDC, 0x0F, 0xFE, 64, 0, 1, 0, 0, 0, 2, 0, 1, 0, 0, 'q', 'x', 'c', 'h', 'a', 'n', 'g', 'e'}
	if !bytes.Equal(h, wantH) {
		t.Fatalf("hello got  %x\nwant %x", h, wantH)
	}
}

func TestMaxFrameSizeFor(t *testing.T) {
	for _, tc := range []struct{ seg, want int }{
		{32 << 10, 32<<10 + wire.BufferResponseHeaderMax},
		{1 << 20, 1<<20 + 39},
		{0, wire.MaxErrorFrameSize},
		{1024, wire.MaxErrorFrameSize},
		{-5, wire.MaxErrorFrameSize},
	} {
		if got := wire.MaxFrameSizeFor(tc.seg); got != tc.want {
			t.Errorf("MaxFrameSizeFor(%d) = %d, want %d", tc.seg, got, tc.want)
		}
	}
	if wire.DefaultMaxFrameSize < wire.MaxFrameSizeFor(32<<10) {
		t.Error("default max frame does not fit a 32 KiB segment")
	}
	for _, tc := range []struct{ in, want int }{{0, wire.DefaultMaxFrameSize}, {-1, wire.DefaultMaxFrameSize}, {10, wire.MinMaxFrameSize}, {5000, 5000}} {
		if got := (wire.Options{MaxFrameSize: tc.in}).EffectiveMaxFrameSize(); got != tc.want {
			t.Errorf("EffectiveMaxFrameSize(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestErrorResponseTruncation(t *testing.T) {
	long := strings.Repeat("é", wire.MaxErrorMessageLen) // 2 bytes per rune
	for _, opts := range []wire.Options{{}, {StreamMode: true}, {MaxFrameSize: 100}} {
		m := wire.ErrorResponse{ReceiverID: recvA, Code: wire.CodeInternal, Message: long}
		f := wire.AppendFrame(nil, m, opts)
		if len(f) > opts.EffectiveMaxFrameSize() {
			t.Fatalf("frame %d > max %d", len(f), opts.EffectiveMaxFrameSize())
		}
		if len(f) != wire.FrameLen(m, opts) {
			t.Fatalf("FrameLen %d, frame %d", wire.FrameLen(m, opts), len(f))
		}
		got, err := wire.DecodeErrorResponse(f[wire.HeaderSize:], opts.StreamMode)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(got.Message) || !strings.HasPrefix(long, got.Message) || len(got.Message) > wire.MaxErrorMessageLen {
			t.Fatalf("bad truncation: %d bytes", len(got.Message))
		}
		if len(got.Message) < len(f)-wire.HeaderSize-21-1 {
			t.Fatalf("message cut too short")
		}
	}
	// Invalid UTF-8 is replaced.
	f := wire.AppendFrame(nil, wire.ErrorResponse{Fatal: true, Code: wire.CodeProtocol, Message: "a\xffb"}, wire.Options{})
	got, err := wire.DecodeErrorResponse(f[wire.HeaderSize:], false)
	if err != nil || got.Message != "a\uFFFDb" {
		t.Fatalf("got %q, %v", got.Message, err)
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{wire.IDBufferResponse.String(), "BufferResponse"},
		{wire.IDNewBufferSize.String(), "NewBufferSize"},
		{wire.IDHello.String(), "Hello"},
		{wire.MsgID(99).String(), "MsgID(99)"},
		{wire.PriorityBarrier.String(), "PriorityBarrier"},
		{wire.DataType(9).String(), "DataType(9)"},
		{wire.CodePartitionNotFound.String(), "PartitionNotFound"},
		{wire.ErrorCode(0).String(), "ErrorCode(0)"},
		{recvA.String(), "0102030405060708090a0b0c0d0e0f10"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for dt := wire.DataType(0); dt < 10; dt++ {
		valid := dt <= 4
		if dt.Valid() != valid || dt.IsEvent() != (dt != 0) || dt.IsPriority() != (dt == 2 || dt == 4) {
			t.Errorf("DataType %d predicates wrong", dt)
		}
	}
}

func TestHello(t *testing.T) {
	h := wire.NewHello(wire.Options{MaxFrameSize: wire.MaxFrameSizeFor(64 << 10)})
	if err := wire.CheckHello(h); err != nil {
		t.Fatal(err)
	}
	h.Version = 7
	err := wire.CheckHello(h)
	if !errors.Is(err, wire.ErrVersionMismatch) || !errors.Is(err, wire.ErrProtocol) {
		t.Fatalf("got %v", err)
	}
	if s := err.Error(); !strings.Contains(s, "7") || !strings.Contains(s, "1") || !strings.HasPrefix(s, "wire: ") {
		t.Fatalf("message should name both versions: %q", s)
	}
	body := wire.Hello{Version: 1, MaxFrameSize: 1 << 16}.AppendBody(nil, false)
	copy(body[10:], "HTTP/1.1")
	if _, err := wire.DecodeHello(body, false); !errors.Is(err, wire.ErrNotOurProtocol) || !errors.Is(err, wire.ErrProtocol) {
		t.Fatalf("bad tag: got %v", err)
	}
	body = wire.Hello{Version: 1, MaxFrameSize: 3}.AppendBody(nil, false)
	if _, err := wire.DecodeHello(body, false); !errors.Is(err, wire.ErrInvalidField) {
		t.Fatalf("tiny MaxFrameSize: got %v", err)
	}
}
