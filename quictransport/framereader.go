package quictransport

import (
	"fmt"
	"io"

	"github.com/qexchange/qexchange/exchange/wire"
)

// streamReadBuffer is the read buffer of one stream's frame reader. Small,
// because a node has one per channel (thousands); payloads, the bulk of
// the bytes, go straight into credit-backed buffers and skip it.
const streamReadBuffer = 512

// frameReader reads one stream's frames with the wire codec and refuses
// the messages that may not travel in the stream's direction.
//
// Messages returned by next are owned by the reader and valid until the
// next call. After an error the reader keeps returning it.
type frameReader struct {
	r   *wire.Reader
	err error
}

func newFrameReader(src io.Reader, opts wire.Options) *frameReader {
	return &frameReader{r: wire.NewReaderSize(src, opts, streamReadBuffer)}
}

// next reads the next frame. For a BufferResponse it reads the header
// only; the caller must then call ReadPayload with exactly Size bytes. A
// clean end of stream between frames is io.EOF. Bad input, including a
// message accept refuses, is an error wrapping wire.ErrProtocol.
func (f *frameReader) next(accept func(wire.MsgID) bool) (wire.Message, error) {
	if f.err != nil {
		return nil, f.err
	}
	m, err := f.r.Next()
	if err == nil && accept != nil && !accept(m.ID()) {
		err = fmt.Errorf("%w: unexpected %s on a channel stream in this direction", wire.ErrUnknownMessage, m.ID())
	}
	if err != nil {
		f.err = err
		return nil, err
	}
	return m, nil
}

// ReadPayload reads the pending BufferResponse payload into dst, whose
// length must be the pending size.
func (f *frameReader) ReadPayload(dst []byte) error {
	if f.err != nil {
		return f.err
	}
	if err := f.r.ReadPayload(dst); err != nil {
		f.err = err
		return err
	}
	return nil
}

// DiscardPayload skips the pending BufferResponse payload.
func (f *frameReader) DiscardPayload() error {
	if f.err != nil {
		return f.err
	}
	if err := f.r.DiscardPayload(); err != nil {
		f.err = err
		return err
	}
	return nil
}
