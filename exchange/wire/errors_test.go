package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/qexchange/qexchange/exchange/wire"
)

func i32(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// badBodies are bodies (TCP mode) each DecodeBody must reject with want.
var badBodies = []struct {
	name string
	id   wire.MsgID
	body []byte
	want error
}{
	{"AddCredit short", wire.IDAddCredit, cat(recvA[:], []byte{0, 0, 1}), wire.ErrTruncated},
	{"AddCredit trailing", wire.IDAddCredit, cat(recvA[:], i32(1), []byte{0}), wire.ErrTrailingBytes},
	{"Backlog negative", wire.IDBacklogAnnouncement, cat(recvA[:], i32(-1)), wire.ErrInvalidField},
	{"NewBufferSize zero", wire.IDNewBufferSize, cat(recvA[:], i32(0)), wire.ErrInvalidField},
	{"NewBufferSize trailing", wire.IDNewBufferSize, cat(recvA[:], i32(1), []byte("garbage")), wire.ErrTrailingBytes},
	{"BufferResponse negative backlog", wire.IDBufferResponse, cat(recvA[:], i32(1), i32(-1), []byte{0, 0}, i32(0)), wire.ErrInvalidField},
	{"BufferResponse bad data type", wire.IDBufferResponse, cat(recvA[:], i32(1), i32(0), []byte{5, 0}, i32(0)), wire.ErrInvalidField},
	{"BufferResponse bad compressed", wire.IDBufferResponse, cat(recvA[:], i32(1), i32(0), []byte{0, 2}, i32(0)), wire.ErrInvalidField},
	{"BufferResponse negative size", wire.IDBufferResponse, cat(recvA[:], i32(1), i32(0), []byte{0, 0}, i32(-1)), wire.ErrInvalidField},
	{"BufferResponse short", wire.IDBufferResponse, cat(recvA[:], i32(1)), wire.ErrTruncated},
	{"BufferResponse payload > size", wire.IDBufferResponse, cat(recvA[:], i32(1), i32(0), []byte{0, 0}, i32(2), []byte{1, 2, 3}), wire.ErrTrailingBytes},
	{"PartitionRequest negative credit", wire.IDPartitionRequest, cat(partA[:], i32(0), recvA[:], i32(-1)), wire.ErrInvalidField},
	{"PartitionRequest negative subpartition", wire.IDPartitionRequest, cat(partA[:], i32(-1), recvA[:], i32(1)), wire.ErrInvalidField},
	{"PartitionRequest trailing", wire.IDPartitionRequest, cat(partA[:], i32(0), recvA[:], i32(1), []byte{9}), wire.ErrTrailingBytes},
	{"TaskEvent length too long", wire.IDTaskEventRequest, cat(partA[:], recvA[:], i32(5), []byte("abcd")), wire.ErrTruncated},
	{"TaskEvent trailing", wire.IDTaskEventRequest, cat(partA[:], recvA[:], i32(3), []byte("abcd")), wire.ErrTrailingBytes},
	{"TaskEvent huge length", wire.IDTaskEventRequest, cat(partA[:], recvA[:], []byte{0xff, 0xff, 0xff, 0xff}), wire.ErrTruncated},
	{"ErrorResponse bad fatal", wire.IDErrorResponse, []byte{2, 0, 1, 0, 0}, wire.ErrInvalidField},
	{"ErrorResponse unknown code", wire.IDErrorResponse, []byte{1, 0, 99, 0, 0}, wire.ErrInvalidField},
	{"ErrorResponse code 0", wire.IDErrorResponse, []byte{1, 0, 0, 0, 0}, wire.ErrInvalidField},
	{"ErrorResponse msg too long", wire.IDErrorResponse, cat([]byte{1, 0, 1, 0x10, 0x01}, make([]byte, 4097)), wire.ErrInvalidField},
	{"ErrorResponse bad utf8", wire.IDErrorResponse, []byte{1, 0, 1, 0, 2, 0xff, 0xfe}, wire.ErrInvalidField},
	{"ErrorResponse msg truncated", wire.IDErrorResponse, []byte{1, 0, 1, 0, 5, 'a'}, wire.ErrTruncated},
	{"ErrorResponse trailing", wire.IDErrorResponse, []byte{1, 0, 1, 0, 1, 'a', 'b'}, wire.ErrTrailingBytes},
	{"ErrorResponse empty", wire.IDErrorResponse, nil, wire.ErrTruncated},
	{"ErrorResponse nonfatal no receiver", wire.IDErrorResponse, []byte{0, 0, 1, 0, 0}, wire.ErrTruncated},
	{"Cancel short", wire.IDCancelPartitionRequest, recvA[:15], wire.ErrTruncated},
	{"Resume trailing", wire.IDResumeConsumption, cat(recvA[:], []byte{0}), wire.ErrTrailingBytes},
	{"Ack trailing", wire.IDAckAllUserRecordsProcessed, cat(recvA[:], []byte{0}), wire.ErrTrailingBytes},
	{"Close trailing", wire.IDCloseRequest, []byte{0}, wire.ErrTrailingBytes},
	{"Hello bad tag", wire.IDHello, cat([]byte{0, 1, 0, 0, 0, 0, 0, 1, 0, 0}, []byte("GET / HT")), wire.ErrNotOurProtocol},
	{"Hello short", wire.IDHello, []byte{0, 1}, wire.ErrTruncated},
	{"Hello trailing", wire.IDHello, cat([]byte{0, 1, 0, 0, 0, 0, 0, 1, 0, 0}, []byte("qxchange!")), wire.ErrTrailingBytes},
	{"unknown id", wire.MsgID(11), nil, wire.ErrUnknownMessage},
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range badBodies {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wire.DecodeBody(tc.id, tc.body, false)
			if !errors.Is(err, tc.want) || !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// The same body inside a frame, through the Reader.
			f := rawFrame(tc.id, tc.body)
			_, err = wire.NewReader(bytes.NewReader(f), wire.Options{}).Next()
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("reader: got %v", err)
			}
		})
	}
}

// TestAddCreditAnyValue: the codec decodes any credit, so that a credit
// <= 0 fails one channel (chanproto) instead of the framing of a whole
// TCP connection (docs/architecture.md, "Failure policy").
func TestAddCreditAnyValue(t *testing.T) {
	for _, v := range []int32{0, -3, -1 << 31, 1<<31 - 1} {
		for _, o := range modes {
			m := wire.AddCredit{Credit: v}
			if !o.StreamMode {
				m.ReceiverID = recvA
			}
			got, err := wire.DecodeAddCredit(m.AppendBody(nil, o.StreamMode), o.StreamMode)
			if err != nil || got != m {
				t.Fatalf("credit %d (stream %v): got %+v, %v", v, o.StreamMode, got, err)
			}
			r := wire.NewReader(bytes.NewReader(wire.AppendFrame(nil, m, o)), o)
			if rm, err := r.Next(); err != nil || *rm.(*wire.AddCredit) != m {
				t.Fatalf("reader, credit %d: %v %v", v, rm, err)
			}
			if err := wire.Validate(m, o); err != nil {
				t.Fatalf("Validate credit %d: %v", v, err)
			}
		}
	}
}

func TestFieldError(t *testing.T) {
	_, err := wire.DecodeNewBufferSize(cat(recvA[:], i32(0)), false)
	if got, want := err.Error(), "wire: NewBufferSize.bufferSize = 0: invalid field: must be > 0"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var fe *wire.FieldError
	if !errors.As(err, &fe) || fe.Msg != wire.IDNewBufferSize || fe.Field != "bufferSize" || fe.Value != 0 || fe.Err != wire.ErrInvalidField {
		t.Fatalf("FieldError = %+v", fe)
	}
	_, err = wire.DecodeNewBufferSize(i32(-7), true)
	if !errors.As(err, &fe) || fe.Value != -7 {
		t.Fatalf("got %v", err)
	}
	if err := wire.Validate(wire.NewBufferSize{BufferSize: 0}, wire.Options{}); !errors.Is(err, wire.ErrInvalidField) {
		t.Fatalf("Validate: %v", err)
	}
	if err := wire.Validate(wire.BufferResponse{Size: 1 << 20}, wire.Options{}); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("Validate big buffer: %v", err)
	}
	if err := wire.Validate(&wire.TaskEventRequest{Event: make([]byte, 100)}, wire.Options{MaxFrameSize: 100}); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("Validate big event: %v", err)
	}
}

func TestSentinelsWrapProtocol(t *testing.T) {
	for _, err := range []error{wire.ErrBadMagic, wire.ErrUnknownMessage, wire.ErrFrameTooLarge, wire.ErrFrameTooSmall,
		wire.ErrTruncated, wire.ErrTrailingBytes, wire.ErrInvalidField, wire.ErrVersionMismatch, wire.ErrNotOurProtocol,
		wire.ErrPayloadPending, wire.ErrNoPayload, wire.ErrPayloadSize} {
		if !errors.Is(err, wire.ErrProtocol) {
			t.Errorf("%v does not wrap ErrProtocol", err)
		}
		if s := err.Error(); len(s) < 6 || s[:6] != "wire: " {
			t.Errorf("%q lacks prefix", s)
		}
	}
}

func TestParseHeaderRejects(t *testing.T) {
	opts := wire.Options{MaxFrameSize: 1000}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"wrong magic", frame(20, 0xCAFEBABE, 6, nil), wire.ErrBadMagic},
		{"http", []byte("GET / HTTP/1.1\r\n"), wire.ErrBadMagic},
		{"unknown id 11", frame(20, wire.Magic, 11, nil), wire.ErrUnknownMessage},
		{"unknown id 63", frame(20, wire.Magic, 63, nil), wire.ErrUnknownMessage},
		{"unknown id 255", frame(20, wire.Magic, 255, nil), wire.ErrUnknownMessage},
		{"length above max", frame(1001, wire.Magic, 0, nil), wire.ErrFrameTooLarge},
		{"length huge", frame(0xffffffff, wire.Magic, 0, nil), wire.ErrFrameTooLarge},
		{"length below header", frame(8, wire.Magic, 5, nil), wire.ErrFrameTooSmall},
		{"length zero", frame(0, wire.Magic, 5, nil), wire.ErrFrameTooSmall},
		{"short header", frame(9, wire.Magic, 5, nil)[:8], wire.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := wire.ParseHeader(tc.b, opts)
			if !errors.Is(err, tc.want) || !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("ParseHeader: got %v, want %v", err, tc.want)
			}
			if len(tc.b) < wire.HeaderSize {
				return
			}
			// Same through the Reader, followed by a valid frame that
			// must not be reached.
			in := append(bytes.Clone(tc.b), wire.AppendFrame(nil, wire.CloseRequest{}, opts)...)
			r := wire.NewReader(bytes.NewReader(in), opts)
			_, err = r.Next()
			if !errors.Is(err, tc.want) {
				t.Fatalf("Reader: got %v, want %v", err, tc.want)
			}
			if _, err2 := r.Next(); err2 != err {
				t.Fatalf("error not sticky: %v then %v", err, err2)
			}
		})
	}
	if l, id, err := wire.ParseHeader(frame(1000, wire.Magic, 64, nil), opts); err != nil || l != 1000 || id != wire.IDHello {
		t.Fatalf("max-length frame rejected: %d %v %v", l, id, err)
	}
}

func TestReaderTruncated(t *testing.T) {
	for _, opts := range modes {
		full := encodeStream([]wire.Message{
			wire.AddCredit{ReceiverID: recvA, Credit: 3},
			wire.BufferResponse{ReceiverID: recvA, Sequence: 1, Size: 100},
		}, opts)
		first := wire.FrameLen(wire.AddCredit{}, opts)
		brHdr := wire.BufferResponseHeaderLen(opts.StreamMode)
		for cut := 1; cut < len(full); cut++ {
			r := wire.NewReader(bytes.NewReader(full[:cut]), opts)
			var err error
			n := 0
			for err == nil {
				var m wire.Message
				m, err = r.Next()
				if err != nil {
					break
				}
				n++
				if br, ok := m.(*wire.BufferResponse); ok {
					err = r.ReadPayload(make([]byte, br.Size))
				}
			}
			switch {
			case cut == first:
				if err != io.EOF || n != 1 {
					t.Fatalf("%s cut %d: got %v after %d messages, want clean io.EOF", modeName(opts), cut, err, n)
				}
			default:
				if !errors.Is(err, wire.ErrTruncated) || !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, wire.ErrProtocol) {
					t.Fatalf("%s cut %d: got %v, want ErrTruncated", modeName(opts), cut, err)
				}
				if wantN := map[bool]int{true: 2, false: 1}[cut >= first+brHdr]; cut > first && n != wantN {
					t.Fatalf("%s cut %d: %d messages before error, want %d", modeName(opts), cut, n, wantN)
				}
			}
		}
		// Empty stream: clean EOF.
		if _, err := wire.NewReader(bytes.NewReader(nil), opts).Next(); err != io.EOF {
			t.Fatalf("empty stream: %v", err)
		}
	}
}

func TestReaderBufferResponseSizeMismatch(t *testing.T) {
	for _, opts := range modes {
		hdr := wire.AppendFrame(nil, wire.BufferResponse{ReceiverID: recvA, Size: 10}, opts)
		for _, delta := range []int{-1, 1} {
			f := bytes.Clone(hdr)
			binary.BigEndian.PutUint32(f, uint32(len(hdr)+10+delta))
			f = append(f, make([]byte, 10+delta)...)
			_, err := wire.NewReader(bytes.NewReader(f), opts).Next()
			if !errors.Is(err, wire.ErrInvalidField) {
				t.Fatalf("delta %d: got %v", delta, err)
			}
		}
		// Frame shorter than the BufferResponse header.
		f := rawFrame(wire.IDBufferResponse, make([]byte, 5))
		if _, err := wire.NewReader(bytes.NewReader(f), opts).Next(); !errors.Is(err, wire.ErrTruncated) {
			t.Fatalf("short header: %v", err)
		}
		// Size beyond the maximum frame.
		big := wire.AppendFrame(nil, wire.BufferResponse{Size: 1 << 20}, opts)
		if _, err := wire.NewReader(bytes.NewReader(big), opts).Next(); !errors.Is(err, wire.ErrFrameTooLarge) {
			t.Fatalf("big: %v", err)
		}
	}
}

// errReader fails with a non-EOF error after its data.
type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestReaderPassesSourceErrors(t *testing.T) {
	boom := errors.New("connection reset")
	f := wire.AppendFrame(nil, wire.CloseRequest{}, wire.Options{})
	r := wire.NewReader(&errReader{data: f, err: boom}, wire.Options{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != boom {
		t.Fatalf("got %v, want source error unchanged", err)
	}
}
