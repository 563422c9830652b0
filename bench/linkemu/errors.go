package linkemu

import (
	"errors"
	"fmt"
)

// HowToRun says what the link emulator needs from its environment.
const HowToRun = "run as root (sudo) on Linux with /dev/net/tun; in a container add --cap-add NET_ADMIN --cap-add SYS_ADMIN --device /dev/net/tun"

var (
	// ErrNotPermitted: the process lacks CAP_NET_ADMIN or CAP_SYS_ADMIN
	// (needed for network namespaces and TUN devices).
	ErrNotPermitted = errors.New("linkemu: not permitted: network namespaces and TUN devices need CAP_NET_ADMIN and CAP_SYS_ADMIN; " + HowToRun)
	// ErrNoTUN: /dev/net/tun is absent or unusable.
	ErrNoTUN = errors.New("linkemu: no TUN device: /dev/net/tun is missing (modprobe tun, or pass --device /dev/net/tun to the container); " + HowToRun)
	// ErrUnsupported: the platform is not Linux.
	ErrUnsupported = errors.New("linkemu: unsupported platform: needs Linux network namespaces and TUN; " + HowToRun)
	// ErrClosed is returned by operations on a closed Link.
	ErrClosed = errors.New("linkemu: link closed")
)

// EnvError says exactly what is missing from the environment. It wraps
// ErrNotPermitted, ErrNoTUN or ErrUnsupported (use errors.Is).
type EnvError struct {
	Kind   error  // one of the sentinels above
	Detail string // what exactly is missing
	Err    error  // underlying cause, if any
}

func (e *EnvError) Error() string {
	s := e.Kind.Error()
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the sentinel and the cause.
func (e *EnvError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// OpError is a failure of one setup or teardown step.
type OpError struct {
	Op   string // e.g. "create netns", "open tun", "add address"
	Name string // namespace or device involved
	Err  error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("linkemu: %s %s: %v", e.Op, e.Name, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }
