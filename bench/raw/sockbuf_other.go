//go:build !linux

package raw

import "net"

func forceBuffers(*net.UDPConn, int) {}
