package linkemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
)

// Side names one end of the link.
type Side int

const (
	// A is the side with AddrA; traffic A->B follows Config.AtoB.
	A Side = iota
	// B is the side with AddrB; traffic B->A follows Config.BtoA.
	B
)

func (s Side) String() string {
	switch s {
	case A:
		return "A"
	case B:
		return "B"
	}
	return fmt.Sprintf("Side(%d)", int(s))
}

// DefaultPrefix starts the names of the namespaces this package creates:
// "<prefix>-<pid>-<n>-a" and "-b".
const DefaultPrefix = "qxlink"

// TUNName is the name of the TUN device inside each namespace.
const TUNName = "qx0"

// tunTxQueueLen is the kernel-side ring of each TUN device, in front of the
// forwarder; large so that only the emulated queue drops packets.
const tunTxQueueLen = 10000

var linkSeq atomic.Int64

// Link is an emulated point-to-point link between two network namespaces.
type Link struct {
	cfg   Config
	log   zerolog.Logger
	names [2]string
	addrs [2]netip.Addr
	sys   sysState

	ctr   [2]dirCounters // [0] = A->B, [1] = B->A
	pipes [2]*pipe
	pool  sync.Pool
	wg    sync.WaitGroup

	nsMu      sync.RWMutex // held (read) while a thread enters a namespace
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Available reports, without side effects, whether links can be created:
// nil, or an *EnvError wrapping ErrNotPermitted, ErrNoTUN or ErrUnsupported.
func Available() error { return sysAvailable() }

// New creates the two namespaces and TUN devices and starts the forwarders.
// ctx bounds the setup only; the link lives until Close. On error nothing
// is left behind.
func New(ctx context.Context, cfg Config) (*Link, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := linkSeq.Add(1) - 1
	l := &Link{cfg: cfg, log: cfg.Logger}
	pid := os.Getpid()
	l.names[A] = fmt.Sprintf("%s-%d-%d-a", DefaultPrefix, pid, n)
	l.names[B] = fmt.Sprintf("%s-%d-%d-b", DefaultPrefix, pid, n)
	// One /30 per link inside 198.18.0.0/15 (32768 of them).
	base := uint32(198)<<24 | uint32(18)<<16 | uint32(n%32768)*4
	l.addrs[A] = u32Addr(base + 1)
	l.addrs[B] = u32Addr(base + 2)
	mtu := cfg.mtu()
	bufSize := mtu + 256
	l.pool.New = func() any { return &packet{b: make([]byte, bufSize)} }

	if err := sysSetup(ctx, l); err != nil {
		if terr := sysTeardown(l); terr != nil {
			l.log.Warn().Err(terr).Msg("linkemu: cleanup after failed setup")
		}
		return nil, err
	}
	inA, outA, inB, outB := sysTUN(l)
	var err0, err1 error
	l.pipes[0], err0 = newPipe("AtoB", cfg.AtoB, mtu, cfg.Seed, streamLossAtoB, streamJitAtoB, inA, outB, &l.ctr[0], &l.pool, l.log)
	l.pipes[1], err1 = newPipe("BtoA", cfg.BtoA, mtu, cfg.Seed, streamLossBtoA, streamJitBtoA, inB, outA, &l.ctr[1], &l.pool, l.log)
	if err := errors.Join(err0, err1); err != nil {
		for _, p := range l.pipes {
			if p != nil {
				p.sleep.close()
			}
		}
		l.pipes = [2]*pipe{}
		_ = sysTeardown(l)
		return nil, err
	}
	for _, p := range l.pipes {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); p.readLoop() }()
		go func() { defer l.wg.Done(); p.writeLoop() }()
	}
	l.log.Info().Str("nsA", l.names[A]).Str("nsB", l.names[B]).
		Stringer("addrA", l.addrs[A]).Stringer("addrB", l.addrs[B]).
		Interface("AtoB", cfg.AtoB).Interface("BtoA", cfg.BtoA).Int64("seed", cfg.Seed).
		Msg("linkemu: link up")
	return l, nil
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Close stops the forwarders, closes the TUN devices and deletes both
// namespaces. It is idempotent. Sockets created in the namespaces keep
// working locally but can no longer reach the other side; close them too.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		l.nsMu.Lock()
		l.closed.Store(true)
		l.nsMu.Unlock()
		for _, p := range l.pipes {
			if p != nil {
				p.stop()
			}
		}
		l.closeErr = sysTeardown(l) // closes the TUN files: readers return
		l.wg.Wait()
		for _, p := range l.pipes {
			if p != nil {
				p.drain()
			}
		}
		l.log.Info().Str("nsA", l.names[A]).Str("nsB", l.names[B]).Err(l.closeErr).Msg("linkemu: link closed")
	})
	return l.closeErr
}

// Config returns the link's configuration.
func (l *Link) Config() Config { return l.cfg }

// AddrA returns the address of side A (inside namespace A).
func (l *Link) AddrA() netip.Addr { return l.addrs[A] }

// AddrB returns the address of side B (inside namespace B).
func (l *Link) AddrB() netip.Addr { return l.addrs[B] }

// Addr returns the address of side s.
func (l *Link) Addr(s Side) netip.Addr { return l.addrs[s&1] }

// Namespace returns the name of side s's network namespace (as used by
// `ip netns exec NAME ...`).
func (l *Link) Namespace(s Side) string { return l.names[s&1] }

// Stats returns the counters of both directions.
func (l *Link) Stats() Stats {
	return Stats{AtoB: l.ctr[0].snapshot(), BtoA: l.ctr[1].snapshot()}
}

// ResetLoss restarts both directions' loss models from the seed, so the
// packets read after it get the same drop decisions, index by index, as
// the packets read after the link was created (or after any other
// ResetLoss). A benchmark calls it before each transport's run so that
// TCP and QUIC face the same loss pattern instead of whatever part of the
// sequence the previous run (or the probe) left over. Traffic still in
// flight when it is called consumes decisions of the new sequence, so call
// it on a quiet link. Counters are not reset (diff Stats instead).
func (l *Link) ResetLoss() {
	for _, p := range l.pipes {
		if p != nil {
			p.resetLoss()
		}
	}
}

// Do runs fn on a goroutine whose OS thread is locked into side's network
// namespace, and restores the thread afterwards. Sockets created by fn
// (net.Listen, net.ListenUDP, net.Dialer.DialContext, ...) belong to that
// namespace for good and may be used from any goroutine afterwards.
// Goroutines started by fn do NOT run in the namespace. A panic in fn is
// re-raised in the caller.
func (l *Link) Do(side Side, fn func() error) error {
	if side != A && side != B {
		return fmt.Errorf("linkemu: invalid side %v", side)
	}
	if l.closed.Load() {
		return ErrClosed
	}
	return sysRunIn(l, side, fn)
}

// ListenTCP listens on a TCP address (e.g. AddrB().String()+":0", or ":9000")
// inside side's namespace.
func (l *Link) ListenTCP(side Side, addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(side, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// ListenUDP opens a UDP socket bound to addr inside side's namespace.
func (l *Link) ListenUDP(side Side, addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := l.Do(side, func() error {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	return c, err
}

// DialTCP connects from side's namespace to addr (normally the other side's
// address).
func (l *Link) DialTCP(ctx context.Context, side Side, addr string) (net.Conn, error) {
	return l.DialFunc(side)(ctx, "tcp", addr)
}

// DialFunc returns a dial function (as used by http.Transport.DialContext
// and similar hooks) whose sockets are created in side's namespace.
func (l *Link) DialFunc(side Side) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.Do(side, func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
