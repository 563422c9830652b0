package wire_test

import (
	"testing"

	"github.com/qexchange/qexchange/exchange/wire"
)

// loopReader serves data over and over, like a connection that never ends.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off += n
	if l.off == len(l.data) {
		l.off = 0
	}
	return n, nil
}

// bufferStream returns 64 BufferResponse frames with size-byte payloads.
func bufferStream(size int32, opts wire.Options) []byte {
	msgs := make([]wire.Message, 64)
	for i := range msgs {
		msgs[i] = wire.BufferResponse{ReceiverID: recvA, Sequence: int32(i), Backlog: 1, Size: size}
	}
	return encodeStream(msgs, opts)
}

func BenchmarkReaderBufferResponse(b *testing.B) {
	for _, size := range []int32{32 << 10, 4 << 10, 128} {
		for _, opts := range modes {
			b.Run(modeName(opts)+"/"+sizeName(size), func(b *testing.B) {
				src := &loopReader{data: bufferStream(size, opts)}
				r := wire.NewReader(src, opts)
				dst := make([]byte, size)
				b.SetBytes(int64(size) + int64(wire.BufferResponseHeaderLen(opts.StreamMode)))
				b.ReportAllocs()
				for b.Loop() {
					m, err := r.Next()
					if err != nil {
						b.Fatal(err)
					}
					if err := r.ReadPayload(dst[:m.(*wire.BufferResponse).Size]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkReaderAddCredit(b *testing.B) {
	opts := wire.Options{}
	var data []byte
	for i := range 1000 {
		data = wire.AppendFrame(data, &wire.AddCredit{ReceiverID: recvA, Credit: int32(i + 1)}, opts)
	}
	r := wire.NewReader(&loopReader{data: data}, opts)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	opts := wire.Options{}
	cases := []struct {
		name string
		m    wire.Message
	}{
		{"BufferResponse", &wire.BufferResponse{ReceiverID: recvA, Backlog: 3, Size: 32 << 10}},
		{"AddCredit", &wire.AddCredit{ReceiverID: recvA, Credit: 2}},
		{"PartitionRequest", &wire.PartitionRequest{PartitionID: partA, ReceiverID: recvA, Credit: 2}},
		{"ErrorResponse", &wire.ErrorResponse{ReceiverID: recvA, Code: wire.CodePartitionNotFound, Message: "partition not found"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				if br, ok := tc.m.(*wire.BufferResponse); ok {
					br.Sequence++
				}
				buf = wire.AppendFrame(buf[:0], tc.m, opts)
			}
		})
	}
}

func sizeName(n int32) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return itoa(int(n>>10)) + "KiB"
	default:
		return itoa(int(n)) + "B"
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}
