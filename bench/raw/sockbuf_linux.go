package raw

import (
	"net"

	"golang.org/x/sys/unix"
)

// forceBuffers raises the socket buffers past the sysctl limits where the
// process may (CAP_NET_ADMIN), as quictransport does.
func forceBuffers(c *net.UDPConn, size int) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
	})
}
