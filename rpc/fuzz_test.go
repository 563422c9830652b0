package rpc

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzReadFrame: any byte stream either decodes into a message that
// encodes back to the same frame, or fails with a frame error or an I/O
// error; nothing panics or allocates beyond the maximum size.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(nil, &message{version: 1, kind: kindCall, callID: 7, timeout: time.Second, endpoint: "e", method: "m", token: "t", payload: []byte(`{"By":1}`)}))
	f.Add(appendFrame(nil, &message{version: 1, kind: kindResponse, code: codeRemote, detail: "boom"}))
	f.Add([]byte{0, 0, 0, 3, 1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 12
		var m message
		var buf []byte
		err := readFrame(bytes.NewReader(data), &buf, max, &m)
		var fe *frameError
		switch {
		case errors.As(err, &fe):
			if fe.code != codeBadMessage && fe.code != codeTooLarge {
				t.Fatalf("frame error code %d", fe.code)
			}
		case err != nil:
		default:
			if cap(buf) > max {
				t.Fatalf("buffer grew to %d", cap(buf))
			}
			out := appendFrame(nil, &m)
			n := frameHeaderSize + m.encodedSize()
			if !bytes.Equal(out[:12], data[:12]) || !bytes.Equal(out[16:], data[16:n]) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", data[:n], out)
			}
		}
	})
}
