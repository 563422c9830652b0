//go:build linux

package tcptransport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

// vethPair is two network namespaces joined by a veth pair, A at
// 10.231.0.1 and B at 10.231.0.2, for a silent network partition that no
// proxy can fake: a user-space relay's kernel answers keepalives itself.
type vethPair struct {
	t    testing.TB
	ns   [2]string
	devs [2]string
	ips  [2]string
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func newVethPair(t testing.TB) *vethPair {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	id := fmt.Sprintf("qxdp%d", os.Getpid()%100000)
	v := &vethPair{t: t, ns: [2]string{id + "a", id + "b"}, devs: [2]string{id + "va", id + "vb"}, ips: [2]string{"10.231.0.1", "10.231.0.2"}}
	t.Cleanup(func() {
		for _, n := range v.ns {
			_ = ipCmd("netns", "del", n)
		}
	})
	steps := [][]string{
		{"netns", "add", v.ns[0]}, {"netns", "add", v.ns[1]},
		{"link", "add", v.devs[0], "netns", v.ns[0], "type", "veth", "peer", "name", v.devs[1], "netns", v.ns[1]},
	}
	for i := range 2 {
		steps = append(steps,
			[]string{"-n", v.ns[i], "addr", "add", v.ips[i] + "/24", "dev", v.devs[i]},
			[]string{"-n", v.ns[i], "link", "set", v.devs[i], "up"})
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Skipf("cannot set up network namespaces: %v", err)
		}
	}
	return v
}

// do runs fn on a thread moved into namespace i.
func (v *vethPair) do(i int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + v.ns[i])
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, err) // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func (v *vethPair) listen(i int) ListenFunc {
	return func(network, addr string) (ln net.Listener, err error) {
		err = v.do(i, func() error {
			ln, err = net.Listen(network, addr)
			return err
		})
		return ln, err
	}
}

func (v *vethPair) dial(i int) DialFunc {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = v.do(i, func() error {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// silence drops every frame both ways from now on, without a word to
// either side: each side's neighbour entry for the other points to a MAC
// address nobody has, so frames leave and are discarded by the receiving
// end, as on a partitioned network.
func (v *vethPair) silence() {
	for i := range 2 {
		if err := ipCmd("-n", v.ns[i], "neigh", "replace", v.ips[1-i], "lladdr", "02:00:00:00:00:99", "dev", v.devs[i], "nud", "permanent"); err != nil {
			v.t.Fatal(err)
		}
	}
}

// TestSilentPartitionDetectedBothSides: records are flowing when the
// network goes silent both ways; the producer (data in flight:
// TCP_USER_TIMEOUT) and the consumer (idle, waiting: keepalive probes)
// each fail within DeadPeerTimeout, rounded up to a KeepAlive period,
// plus a margin for a loaded machine.
func TestSilentPartitionDetectedBothSides(t *testing.T) {
	v := newVethPair(t)
	defer transporttest.CheckGoroutines(t)()
	const keepAlive, deadPeer = 500 * time.Millisecond, 2 * time.Second
	bound := deadPeer + keepAlive + time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node := func(i int) *exchange.Environment {
		e, err := exchange.NewEnvironment(ctx, exchange.Config{
			NetworkMemory: 8 << 20, SegmentSize: testSegment, ListenAddr: v.ips[i] + ":0",
			Transport: New(Config{KeepAlive: keepAlive, DeadPeerTimeout: deadPeer, Listen: v.listen(i), Dial: v.dial(i)}),
		})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	prod, cons := node(1), node(0)
	defer transporttest.CheckPools(t, prod)
	defer prod.Close()
	defer transporttest.CheckPools(t, cons)
	defer cons.Close()

	id := exchange.PartitionIDFromName("silent", 0)
	part, err := prod.CreatePartition(exchange.PartitionConfig{ID: id, Subpartitions: 1, BufferTimeout: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: id, Addr: prod.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		rec := make([]byte, 100)
		for part.EmitTo(ctx, 0, rec) == nil {
		}
	}()
	for range 10_000 { // flowing
		if _, err := g.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	consErr := make(chan error, 1)
	go func() {
		for {
			if _, err := g.Next(ctx); err != nil {
				consErr <- err
				return
			}
		}
	}()
	silenced := time.Now()
	v.silence()

	err = part.WaitAllRecordsProcessed(ctx)
	prodTook := time.Since(silenced)
	if !errors.Is(err, exchange.ErrConsumerLost) || !strings.Contains(err.Error(), v.ips[0]) {
		t.Fatalf("producer: %v, want ErrConsumerLost naming %s", err, v.ips[0])
	}
	err = <-consErr
	consTook := time.Since(silenced)
	if !errors.Is(err, exchange.ErrConnectionLost) {
		t.Fatalf("consumer: %v, want ErrConnectionLost", err)
	}
	t.Logf("silent partition detected by the producer after %v (%v), by the consumer after %v (%v); bound %v",
		prodTook.Round(time.Millisecond), part.Finish(ctx), consTook.Round(time.Millisecond), err, bound)
	if prodTook > bound || consTook > bound {
		t.Fatalf("detection took producer %v, consumer %v; want <= %v", prodTook, consTook, bound)
	}
	if prodTook < deadPeer-keepAlive || consTook < deadPeer-keepAlive {
		t.Fatalf("detection after producer %v, consumer %v: before DeadPeerTimeout %v, so not by it", prodTook, consTook, deadPeer)
	}
}
