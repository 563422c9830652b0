//go:build !linux

package raw

import (
	"errors"
	"net"
)

func forceBuffers(*net.UDPConn, int) {}

func setCongestion(*net.TCPConn, string) error {
	return errors.New("TCP_CONGESTION is Linux only")
}
