// Package linkemu is a packet-level link emulator for lossy-network
// benchmarks: two network namespaces, each with a TUN device, joined by a
// forwarder running in the calling process that applies loss, a
// rate-limited drop-tail queue and delay to every IP packet, per direction.
//
// Real kernel TCP and real quic-go run unchanged on top of it, so a lost
// packet stalls a TCP connection (head-of-line blocking) or only the QUIC
// streams whose data it carried, exactly as on a real lossy path. A
// TCP-level proxy cannot emulate this and must not be used for it.
//
// # Why not netem
//
// The kernels this project runs on (CI included) have no netem qdisc, and
// netem is not seeded per run. linkemu needs only TUN, network namespaces
// and root (CAP_NET_ADMIN and CAP_SYS_ADMIN); Available reports what is
// missing. Its loss decisions come from a generator seeded by Config.Seed
// and the direction, one decision per packet index, so two runs (or two
// transports run one after the other) with the same seed lose the same
// packet indexes.
//
// # Processing order
//
// For each direction, every packet read from the sending TUN goes through:
//
//  1. the loss model (Bernoulli, or Gilbert-Elliott when BurstLen > 1);
//  2. a drop-tail queue of QueuePackets in front of a serializer at
//     RateBitsPerSec (a packet of n bytes occupies the bottleneck for
//     n*8/rate; default queue: one bandwidth-delay product, at least 16);
//  3. a delay line: fixed Delay plus optional Jitter, order preserving;
//  4. a write to the other TUN.
//
// Steps 1-3 are pure types (LossModel, Shaper, DelayLine) that take explicit
// times. The forwarder computes every packet's departure time when it
// arrives and a timer-driven writer (timerfd, tens of microseconds
// precision) delivers packets when due; buffers come from a pool.
//
// The TUN devices have no virtio-net header, so the kernel segments
// TSO/GSO/USO super-packets in software before they reach the TUN and
// every emulated packet is one wire-sized IP packet (MTU 1500 by default);
// packets written to the TUN are not GRO-merged.
//
// # Using the namespaces
//
// Sockets belong to the namespace they were created in. Create them inside
// Link.Do, or with the helpers ListenTCP, ListenUDP, DialTCP and DialFunc,
// and then use them from any goroutine:
//
//	ln, _ := link.ListenTCP(linkemu.B, link.AddrB().String()+":0")
//	conn, _ := link.DialTCP(ctx, linkemu.A, ln.Addr().String())
//
//	udp, _ := link.ListenUDP(linkemu.A, link.AddrA().String()+":0") // e.g. for quic.Transport
//
// Do runs its function on a goroutine locked to an OS thread that is moved
// into the namespace and back; goroutines started inside it do not inherit
// the namespace.
//
// # Lifetime and cleanup
//
// New registers nothing global. Close stops the forwarders and deletes the
// namespaces; call it on every path (defer, and on SIGINT/SIGTERM via
// signal.NotifyContext). Namespaces of a process that died without Close
// (e.g. SIGKILL) are named "qxlink-<pid>-<n>-a|b"; RemoveStale("") removes
// those whose process no longer exists, so a benchmark can call it at start.
//
// # Fidelity
//
// Link.Probe measures RTT, per-direction loss and rate with UDP through
// the link, and ProbeResult.Check compares them with the configuration.
// Run it before a benchmark on the same link: a host too busy to forward
// in time shows up there (as queue drops during the paced loss train, or
// an idle bottleneck during the rate burst) rather than silently skewing
// results.
package linkemu
