package wire_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/qexchange/qexchange/exchange/wire"
)

// FuzzReader feeds arbitrary bytes to a Reader in both modes. It must never
// panic or loop; every error is io.EOF or wraps ErrProtocol; and every
// message it decodes re-encodes to exactly the bytes it was read from and
// decodes again to the same value.
func FuzzReader(f *testing.F) {
	for _, opts := range modes {
		f.Add(encodeStream(sampleMessages(), opts), opts.StreamMode)
		for _, m := range sampleMessages() {
			f.Add(encodeStream([]wire.Message{m}, opts), opts.StreamMode)
		}
	}
	for _, tc := range badBodies {
		f.Add(rawFrame(tc.id, tc.body), false)
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false)
	f.Add(frame(0xffffffff, wire.Magic, 0, nil), true)

	f.Fuzz(func(t *testing.T, data []byte, streamMode bool) {
		opts := wire.Options{StreamMode: streamMode}
		src := bytes.NewReader(data)
		// A small buffer: refills at every frame boundary are exercised, and
		// an exec does not allocate the default 64 KiB.
		r := wire.NewReaderSize(src, opts, 64)
		consumed := func() int { return len(data) - src.Len() - r.Buffered() }
		for i := 0; ; i++ {
			if i > len(data)/wire.HeaderSize {
				t.Fatalf("%d messages from %d bytes", i, len(data))
			}
			start := consumed()
			m, err := r.Next()
			if err != nil {
				checkErr(t, err)
				return
			}
			var pl []byte
			if br, ok := m.(*wire.BufferResponse); ok {
				pl = make([]byte, br.Size) // the reader bounds Size
				if err := r.ReadPayload(pl); err != nil {
					checkErr(t, err)
					return
				}
			}
			orig := data[start:consumed()]
			enc := append(wire.AppendFrame(nil, m, opts), pl...)
			if !bytes.Equal(enc, orig) {
				t.Fatalf("%v re-encodes differently:\n read %x\n enc  %x", m.ID(), orig, enc)
			}
			r2 := wire.NewReader(bytes.NewReader(enc), opts)
			m2, err := r2.Next()
			if err != nil {
				t.Fatalf("re-encoded %v does not decode: %v", m.ID(), err)
			}
			if !reflect.DeepEqual(normalize(m, streamMode), normalize(m2, streamMode)) {
				t.Fatalf("re-decoded %#v, want %#v", value(m2), value(m))
			}
			if br, ok := m2.(*wire.BufferResponse); ok {
				pl2 := make([]byte, br.Size)
				if err := r2.ReadPayload(pl2); err != nil || !bytes.Equal(pl, pl2) {
					t.Fatalf("payload: %v", err)
				}
			}
			if _, err := r2.Next(); err != io.EOF {
				t.Fatalf("after re-decoded message: %v", err)
			}
		}
	})
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err != io.EOF && !errors.Is(err, wire.ErrProtocol) {
		t.Fatalf("error neither io.EOF nor ErrProtocol: %v", err)
	}
	if err == io.EOF {
		return
	}
	if s := err.Error(); len(s) < 6 || s[:6] != "wire: " {
		t.Fatalf("error without prefix: %q", s)
	}
}

// fuzzDecode fuzzes one DecodeX: errors wrap ErrProtocol, and a decoded
// body re-encodes to the same bytes (the encoding is canonical) and decodes
// to the same value.
func fuzzDecode[M wire.Message](f *testing.F, id wire.MsgID, decode func([]byte, bool) (M, error)) {
	for _, m := range sampleMessages() {
		if m.ID() != id {
			continue
		}
		for _, sm := range []bool{false, true} {
			body := m.AppendBody(nil, sm)
			if id == wire.IDBufferResponse {
				body = append(body, payloadFor(min(payloadSizeOf(m), 64))...)
			}
			f.Add(body, sm)
		}
	}
	for _, tc := range badBodies {
		if tc.id == id {
			f.Add(tc.body, false)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, streamMode bool) {
		m, err := decode(body, streamMode)
		if err != nil {
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("error does not wrap ErrProtocol: %v", err)
			}
			return
		}
		enc := m.AppendBody(nil, streamMode)
		want := body
		if id == wire.IDBufferResponse && len(body) > len(enc) {
			want = body[:len(enc)]
		}
		if !bytes.Equal(enc, want) {
			t.Fatalf("re-encoding differs:\n in  %x\n enc %x", want, enc)
		}
		m2, err := decode(enc, streamMode)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if !reflect.DeepEqual(normalize(m, streamMode), normalize(m2, streamMode)) {
			t.Fatalf("got %#v, want %#v", m2, m)
		}
		// Validate agrees with the decoder on fields (a BufferResponse's Size
		// may still exceed any frame limit).
		if err := wire.Validate(m, wire.Options{StreamMode: streamMode, MaxFrameSize: wire.MaxMaxFrameSize}); err != nil && !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("decoded message fails Validate: %v", err)
		}
	})
}

func payloadSizeOf(m wire.Message) int32 {
	if br, ok := m.(wire.BufferResponse); ok {
		return br.Size
	}
	return 0
}

func FuzzDecodeBufferResponse(f *testing.F) {
	fuzzDecode(f, wire.IDBufferResponse, wire.DecodeBufferResponse)
}

func FuzzDecodeErrorResponse(f *testing.F) {
	fuzzDecode(f, wire.IDErrorResponse, wire.DecodeErrorResponse)
}

func FuzzDecodePartitionRequest(f *testing.F) {
	fuzzDecode(f, wire.IDPartitionRequest, wire.DecodePartitionRequest)
}

func FuzzDecodeTaskEventRequest(f *testing.F) {
	fuzzDecode(f, wire.IDTaskEventRequest, wire.DecodeTaskEventRequest)
}

func FuzzDecodeCancelPartitionRequest(f *testing.F) {
	fuzzDecode(f, wire.IDCancelPartitionRequest, wire.DecodeCancelPartitionRequest)
}

func FuzzDecodeCloseRequest(f *testing.F) {
	fuzzDecode(f, wire.IDCloseRequest, wire.DecodeCloseRequest)
}

func FuzzDecodeAddCredit(f *testing.F) {
	fuzzDecode(f, wire.IDAddCredit, wire.DecodeAddCredit)
}

func FuzzDecodeResumeConsumption(f *testing.F) {
	fuzzDecode(f, wire.IDResumeConsumption, wire.DecodeResumeConsumption)
}

func FuzzDecodeAckAllUserRecordsProcessed(f *testing.F) {
	fuzzDecode(f, wire.IDAckAllUserRecordsProcessed, wire.DecodeAckAllUserRecordsProcessed)
}

func FuzzDecodeBacklogAnnouncement(f *testing.F) {
	fuzzDecode(f, wire.IDBacklogAnnouncement, wire.DecodeBacklogAnnouncement)
}

func FuzzDecodeNewBufferSize(f *testing.F) {
	fuzzDecode(f, wire.IDNewBufferSize, wire.DecodeNewBufferSize)
}

func FuzzDecodeHello(f *testing.F) {
	fuzzDecode(f, wire.IDHello, wire.DecodeHello)
}
