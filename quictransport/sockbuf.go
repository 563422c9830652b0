package quictransport

import (
	"net"
	"syscall"
)

// sockBufResult says what the kernel granted for one socket buffer.
type sockBufResult struct {
	want, got int // bytes; got 0: unknown
}

func (r sockBufResult) capped() bool { return r.got > 0 && r.got < r.want }

// raiseBuffers sets pc's receive and send buffers to size bytes, forcing
// past the sysctl limits where the process may (Linux, CAP_NET_ADMIN),
// and reports what it got. quic-go does the same when it wraps the socket;
// doing it first lets the transport warn through its own logger, and
// quic-go then finds the buffers large enough and stays quiet.
func raiseBuffers(pc net.PacketConn, size int) (rcv, snd sockBufResult) {
	rcv.want, snd.want = size, size
	if c, ok := pc.(interface{ SetReadBuffer(int) error }); ok {
		_ = c.SetReadBuffer(size)
	}
	if c, ok := pc.(interface{ SetWriteBuffer(int) error }); ok {
		_ = c.SetWriteBuffer(size)
	}
	sc, ok := pc.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return rcv, snd
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return rcv, snd
	}
	rcv.got, snd.got = forceBuffers(raw, size)
	return rcv, snd
}
