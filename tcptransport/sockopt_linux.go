//go:build linux

package tcptransport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qexchange/qexchange/exchange"
)

const availableCongestionFile = "/proc/sys/net/ipv4/tcp_available_congestion_control"

// setCongestion sets TCP_CONGESTION on fd.
func setCongestion(fd int, algo string) error {
	if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, algo); err != nil {
		return congestionError(algo, err)
	}
	return nil
}

// congestion returns the TCP_CONGESTION of fd.
func congestion(fd int) (string, error) {
	s, err := unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	return strings.TrimRight(s, "\x00"), err
}

// checkCongestion reports whether the kernel lets this process use algo,
// on a throwaway socket.
func checkCongestion(algo string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil // no socket to try on; dial and accept will tell
		}
	}
	defer unix.Close(fd)
	return setCongestion(fd, algo)
}

func congestionError(algo string, err error) error {
	avail := "unknown"
	if b, rerr := os.ReadFile(availableCongestionFile); rerr == nil {
		avail = strings.TrimSpace(string(b))
	}
	hint := ""
	if errors.Is(err, unix.EPERM) {
		hint = "; unprivileged processes may only use those in /proc/sys/net/ipv4/tcp_allowed_congestion_control"
	}
	return fmt.Errorf("%w: tcptransport: TCP congestion control %q is not available: %v (available: %s, see %s%s)",
		exchange.ErrInvalidConfig, algo, err, avail, availableCongestionFile, hint)
}

// setUserTimeout sets TCP_USER_TIMEOUT: the connection ends when data it
// sent (or, with keepalive, its probes) stays unacknowledged for d.
func setUserTimeout(tc *net.TCPConn, d time.Duration) error {
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	}); err != nil {
		return err
	}
	return serr
}
