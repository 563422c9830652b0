//go:build !linux

package tcptransport

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

func setCongestion(fd int, algo string) error { return checkCongestion(algo) }

func congestion(fd int) (string, error) { return "", errors.New("TCP_CONGESTION is Linux only") }

func checkCongestion(algo string) error {
	return fmt.Errorf("%w: tcptransport: TCP congestion control %q: TCP_CONGESTION is only supported on Linux (see /proc/sys/net/ipv4/tcp_available_congestion_control there)",
		exchange.ErrInvalidConfig, algo)
}

// setUserTimeout: TCP_USER_TIMEOUT is Linux only; the keepalive probe
// count covers DeadPeerTimeout for idle connections (keepAliveConfig).
func setUserTimeout(*net.TCPConn, time.Duration) error { return nil }
