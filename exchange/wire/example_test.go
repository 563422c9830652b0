package wire_test

import (
	"bytes"
	"fmt"
	"io"
	"net"

	"github.com/qexchange/qexchange/exchange/wire"
)

func Example() {
	opts := wire.Options{StreamMode: false, MaxFrameSize: wire.MaxFrameSizeFor(32 << 10)}
	channel := wire.ID{1}

	// Producer side: frames are appended to a reused slice; a
	// BufferResponse is written as header + payload without copying the
	// payload (net.Buffers uses writev on a TCP connection).
	var conn bytes.Buffer // stands in for a net.Conn
	var frame []byte
	frame = wire.AppendFrame(frame[:0], &wire.Hello{Version: wire.ProtocolVersion, MaxFrameSize: uint32(opts.MaxFrameSize)}, opts)
	conn.Write(frame)
	payload := []byte("serialized records")
	hdr := wire.BufferResponse{ReceiverID: channel, Sequence: 0, Backlog: 2, DataType: wire.DataBuffer, Size: int32(len(payload))}
	frame = wire.AppendFrame(frame[:0], &hdr, opts)
	bufs := net.Buffers{frame, payload}
	bufs.WriteTo(&conn)
	frame = wire.AppendFrame(frame[:0], &wire.BacklogAnnouncement{ReceiverID: channel, Backlog: 5}, opts)
	conn.Write(frame)

	// Consumer side.
	r := wire.NewReader(&conn, opts)
	for {
		m, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		switch m := m.(type) {
		case *wire.Hello:
			fmt.Println("hello:", wire.CheckHello(*m))
		case *wire.BufferResponse:
			buf := make([]byte, m.Size) // in the exchange: a pooled network buffer
			if err := r.ReadPayload(buf); err != nil {
				fmt.Println("error:", err)
				return
			}
			fmt.Printf("buffer #%d for %s: %q (backlog %d)\n", m.Sequence, m.ReceiverID.String()[:4], buf, m.Backlog)
		case *wire.BacklogAnnouncement:
			fmt.Println("backlog:", m.Backlog)
		}
	}
	// Output:
	// hello: <nil>
	// buffer #0 for 0100: "serialized records" (backlog 2)
	// backlog: 5
}
