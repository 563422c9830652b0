//go:build !race

package wire_test

import (
	"testing"

	"github.com/qexchange/qexchange/exchange/wire"
)

// TestZeroAllocs asserts the steady-state hot paths allocate nothing (the
// race detector adds allocations, hence the build tag).
func TestZeroAllocs(t *testing.T) {
	for _, opts := range modes {
		src := &loopReader{data: bufferStream(32<<10, opts)}
		r := wire.NewReader(src, opts)
		dst := make([]byte, 32<<10)
		read := func() {
			m, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if err := r.ReadPayload(dst[:m.(*wire.BufferResponse).Size]); err != nil {
				t.Fatal(err)
			}
		}
		if n := testing.AllocsPerRun(1000, read); n != 0 {
			t.Errorf("%s: Reader.Next+ReadPayload: %v allocs/op", modeName(opts), n)
		}

		var ctl []byte
		for _, m := range sampleMessages() {
			if m.ID() != wire.IDErrorResponse && m.ID() != wire.IDBufferResponse { // ErrorResponse allocates its string
				ctl = wire.AppendFrame(ctl, ptrTo(m), opts)
			}
		}
		r = wire.NewReader(&loopReader{data: ctl}, opts)
		if n := testing.AllocsPerRun(1000, func() {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: Reader.Next (control): %v allocs/op", modeName(opts), n)
		}

		buf := make([]byte, 0, 256)
		hdr := &wire.BufferResponse{ReceiverID: recvA, Size: 32 << 10}
		credit := &wire.AddCredit{ReceiverID: recvA, Credit: 1}
		if n := testing.AllocsPerRun(1000, func() {
			hdr.Sequence++
			buf = wire.AppendFrame(buf[:0], hdr, opts)
			buf = wire.AppendFrame(buf, credit, opts)
		}); n != 0 {
			t.Errorf("%s: AppendFrame: %v allocs/op", modeName(opts), n)
		}
	}
}
