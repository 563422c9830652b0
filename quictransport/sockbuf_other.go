//go:build !linux

package quictransport

import "syscall"

// forceBuffers cannot inspect the buffers on this platform: unknown (0).
func forceBuffers(syscall.RawConn, int) (rcv, snd int) { return 0, 0 }

const bufferSysctlHint = "raise the OS's UDP socket buffer limits (e.g. kern.ipc.maxsockbuf) to at least %d / %d bytes"
