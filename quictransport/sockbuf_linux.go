//go:build linux

package quictransport

import (
	"syscall"
)

// forceBuffers raises the buffers with SO_RCVBUFFORCE / SO_SNDBUFFORCE
// when they are below size (this needs CAP_NET_ADMIN and fails silently
// otherwise) and returns the sizes in force. Linux reports twice the size
// set (it accounts for its bookkeeping overhead), and quic-go compares
// that reported value with its target, so this does too.
func forceBuffers(raw syscall.RawConn, size int) (rcv, snd int) {
	_ = raw.Control(func(fd uintptr) {
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		if rcv < size {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, size)
			rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		}
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		if snd < size {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, size)
			snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		}
	})
	return rcv, snd
}

const bufferSysctlHint = "sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d"
