//go:build linux

package linkemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where named namespaces are bind-mounted (as by `ip netns`).
const netnsDir = "/run/netns"

type sysState struct {
	ns      [2]netns.NsHandle
	tun     [2]*os.File
	created [2]bool
}

func sysAvailable() error {
	fi, err := os.Stat("/dev/net/tun")
	if err != nil {
		return &EnvError{Kind: ErrNoTUN, Detail: "stat /dev/net/tun", Err: err}
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		return &EnvError{Kind: ErrNoTUN, Detail: "/dev/net/tun is not a character device"}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return &EnvError{Kind: ErrNotPermitted, Detail: "cannot read capabilities", Err: err}
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var missing []string
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_SYS_ADMIN")
	}
	if len(missing) > 0 {
		return &EnvError{Kind: ErrNotPermitted, Detail: fmt.Sprintf("uid %d lacks %s", os.Geteuid(), strings.Join(missing, " and "))}
	}
	return nil
}

// classify turns permission failures into ErrNotPermitted.
func classify(op, name string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return &EnvError{Kind: ErrNotPermitted, Detail: op + " " + name, Err: err}
	}
	return &OpError{Op: op, Name: name, Err: err}
}

func sysSetup(ctx context.Context, l *Link) error {
	for _, s := range []Side{A, B} {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := createSide(l, s); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := configureSide(l, s); err != nil {
			return err
		}
	}
	return nil
}

// inThread runs fn on a fresh goroutine locked to its OS thread and puts
// the thread back into the namespace it started in. If that fails the
// thread stays locked, so the runtime discards it when the goroutine exits.
func inThread(fn func() error) error {
	type result struct {
		err   error
		panic any
	}
	rc := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			rc <- result{err: &OpError{Op: "get current netns", Err: err}}
			return
		}
		defer orig.Close()
		var r result
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.panic = p
				}
			}()
			r.err = fn()
		}()
		if err := netns.Set(orig); err != nil {
			r.err = errors.Join(r.err, &OpError{Op: "restore netns", Err: err})
			rc <- r // thread stays locked and is discarded
			return
		}
		runtime.UnlockOSThread()
		rc <- r
	}()
	r := <-rc
	if r.panic != nil {
		panic(r.panic)
	}
	return r.err
}

func sysRunIn(l *Link, side Side, fn func() error) error {
	return inThread(func() error {
		// The read lock keeps Close from closing the handle under us.
		l.nsMu.RLock()
		if l.closed.Load() {
			l.nsMu.RUnlock()
			return ErrClosed
		}
		err := netns.Set(l.sys.ns[side])
		l.nsMu.RUnlock()
		if err != nil {
			return classify("enter netns", l.names[side], err)
		}
		return fn()
	})
}

func createSide(l *Link, side Side) error {
	name := l.names[side]
	path := filepath.Join(netnsDir, name)
	// A leftover of a crashed process that had our pid: our counter makes
	// the name unique within this process, so it cannot be ours.
	if _, err := os.Stat(path); err == nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
		_ = os.Remove(path)
	}
	return inThread(func() error {
		h, err := netns.NewNamed(name)
		if err != nil {
			if _, serr := os.Stat(path); serr == nil { // created, mount failed
				_ = unix.Unmount(path, unix.MNT_DETACH)
				_ = os.Remove(path)
			}
			return classify("create netns", name, err)
		}
		l.sys.ns[side] = h
		l.sys.created[side] = true
		// No IPv6 on the link: no router/neighbour solicitations or MLD
		// reports that would consume loss decisions.
		for _, k := range []string{"all", "default"} {
			_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0)
		}
		f, err := openTUN(TUNName)
		if err != nil {
			return err
		}
		l.sys.tun[side] = f
		return nil
	})
}

// openTUN creates a TUN device in the calling thread's namespace. No
// IFF_VNET_HDR: the kernel cannot hand us GSO super-packets and segments
// (TSO/UFO/USO) in software before the device; writes go through
// netif_rx without GRO (no IFF_NAPI).
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
			return nil, &EnvError{Kind: ErrNoTUN, Detail: "open /dev/net/tun", Err: err}
		}
		return nil, classify("open", "/dev/net/tun", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, &OpError{Op: "ifreq", Name: name, Err: err}
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, classify("TUNSETIFF", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
		unix.Close(fd)
		return nil, classify("TUNSETOFFLOAD", name, err)
	}
	// fd is non-blocking, so os.NewFile registers it with the runtime poller.
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}

func configureSide(l *Link, side Side) error {
	name := l.names[side]
	h, err := netlink.NewHandleAt(l.sys.ns[side])
	if err != nil {
		return classify("netlink handle in", name, err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return classify("find lo in", name, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return classify("set lo up in", name, err)
	}
	tl, err := h.LinkByName(TUNName)
	if err != nil {
		return classify("find tun in", name, err)
	}
	if err := h.LinkSetMTU(tl, l.cfg.mtu()); err != nil {
		return classify("set mtu in", name, err)
	}
	if err := h.LinkSetTxQLen(tl, tunTxQueueLen); err != nil {
		return classify("set txqueuelen in", name, err)
	}
	ip := l.addrs[side].As4()
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(ip[:]), Mask: net.CIDRMask(30, 32)}}
	if err := h.AddrAdd(tl, addr); err != nil {
		return classify("add address in", name, err)
	}
	if err := h.LinkSetUp(tl); err != nil {
		return classify("set tun up in", name, err)
	}
	// The connected /30 route to the peer exists once the link is up.
	peer := l.addrs[1-side].As4()
	if _, err := h.RouteGet(net.IP(peer[:])); err != nil {
		return classify("route to peer in", name, err)
	}
	return nil
}

func sysTUN(l *Link) (inA io.Reader, outA io.Writer, inB io.Reader, outB io.Writer) {
	return l.sys.tun[A], l.sys.tun[A], l.sys.tun[B], l.sys.tun[B]
}

func sysTeardown(l *Link) error {
	var errs []error
	for _, s := range []Side{A, B} {
		if f := l.sys.tun[s]; f != nil {
			if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs = append(errs, &OpError{Op: "close tun in", Name: l.names[s], Err: err})
			}
		}
		if l.sys.ns[s].IsOpen() {
			_ = l.sys.ns[s].Close()
		}
		if l.sys.created[s] {
			if err := netns.DeleteNamed(l.names[s]); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, &OpError{Op: "delete netns", Name: l.names[s], Err: err})
			} else {
				l.sys.created[s] = false
			}
		}
	}
	return errors.Join(errs...)
}

// RemoveStale deletes namespaces named "<prefix>-<pid>-..." (prefix ""
// means DefaultPrefix) left behind by processes that no longer exist, e.g.
// a benchmark killed by SIGKILL. It returns the names it removed. Namespaces
// of live processes, including this one, are kept.
func RemoveStale(prefix string) ([]string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, &OpError{Op: "list", Name: netnsDir, Err: err}
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // process alive
		}
		if err := netns.DeleteNamed(e.Name()); err != nil {
			errs = append(errs, classify("delete netns", e.Name(), err))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// sleeper waits with timerfd through the runtime poller: hrtimer
// precision (tens of microseconds) instead of the Go timer's ~1 ms, without
// blocking an OS thread or a P.
type sleeper struct {
	fd int
	f  *os.File
	b  [8]byte
}

func newSleeper() (*sleeper, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, &OpError{Op: "timerfd_create", Err: err}
	}
	return &sleeper{fd: fd, f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

// sleep waits for d; it fails once close was called.
func (s *sleeper) sleep(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(s.fd, 0, &its, nil); err != nil {
		return os.ErrClosed
	}
	_, err := s.f.Read(s.b[:])
	return err
}

// close wakes a pending sleep and makes later ones fail.
func (s *sleeper) close() { _ = s.f.Close() }

// setSocketBuffers sets SO_RCVBUF/SO_SNDBUF to n bytes, beyond rmem_max
// (we are root), so the probe's own sockets do not drop packets.
func setSocketBuffers(c *net.UDPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, n)
		}
	})
}
