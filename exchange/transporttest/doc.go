// Package transporttest is the conformance suite every exchange.Transport
// must pass, and the test helpers the project's tests share.
//
// A transport's test calls Run with a factory; the suite builds
// environments (nodes) on it and checks the properties of
// docs/architecture.md, one file per group:
//
//   - exactlyonce.go: every record arrives once and in order (mixed
//     sizes spanning buffers, no exclusive buffers, flush per record,
//     broadcast, local channels alongside remote ones);
//   - backpressure.go: a stalled consumer holds back its producer by
//     credit without slowing the other channels of its connection;
//   - failures.go: cancel and close release everything; a missing, late,
//     failed, released or dead producer and a second consumer give typed
//     errors from InputGate.Next;
//   - events.go: barriers (aligned and unaligned), task events, EndOfData
//     and its acknowledgement;
//   - scale.go: many channels on one connection;
//   - faults.go (with Options.Proxy, or RunFaults): delivery through a
//     fault proxy, with loss, and a cut path that fails every channel on
//     it in bounded time.
//
// Every property runs as a subtest followed by a leak check: every
// network pool back to zero outstanding buffers and no goroutine of this
// module or of quic-go left (CheckPools, CheckGoroutines).
//
// FakeProducer is a hand-driven producer over TCP or QUIC for consumer
// tests with hostile input (it counts the consumer's credit, so it can
// also send as much as a correct producer may); package faultproxy holds
// the TCP connection cutter and the UDP loss proxy.
//
// # The fault suite: each exhaustion attack, its test and its bound
//
// Nodes run with default configs. Every attack test runs a healthy
// producer -> consumer channel on the attacked node, checks that it
// completes (every record, in order, to EndOfPartition) and logs its
// throughput during the attack against the lower of its rates before
// and after it, medians of 150 ms windows (asserted >= 90% only without
// the race detector and with
// QEXCHANGE_TIMING_TESTS=1, as .ci/run's timing step does); and it
// samples the process every 10 ms for the peak growth of VmRSS, the Go
// heap and goroutines above a baseline taken after a GC (all tests share
// one process: RSS growth is held to 256 MiB without the race detector,
// the heap under it).
//
//   - A record length lie (a prefix claiming 16 MiB on 48 channels, 2 MiB
//     sent on each): attack_test.go TestAttackRecordLengthLie (tcp, quic).
//     Bound: spill memory <= Config.SpanningRecordMemory (64 MiB), live
//     heap <= that + 32 MiB, the channels beyond it fail with
//     *exchange.SpanningRecordMemoryError naming the producer, and the
//     budget is 0 once the gate closes. Scaled down by 8 under -race.
//   - 10^4 QUIC streams each claiming a maximum-size frame after Hello:
//     attack_servers_test.go TestAttackQUICStreamClaims. Bound: at most
//     MaxIncomingStreams (8192) opened, goroutines <= 4 x
//     MaxHandshakingStreams + 50, heap/RSS as above.
//   - A TCP connection flood, each connection a slowloris after Hello (9
//     addresses x 128): TestAttackTCPConnectionFlood. Bound: at most
//     MaxConnections (1024) served, 128 per address; 2 goroutines per
//     served connection; heap/RSS as above. The idle ones are closed after
//     IdleConnectionTimeout: tcptransport's TestIdleConnectionClosed times
//     that (with a short timeout).
//   - A control-message flood from a peer that never reads (reconnecting,
//     10 times a second at most): TestAttackTCPControlFlood. Bound: each
//     connection closed once MaxControlBytes (1 MiB) are queued, within
//     10 s; tcptransport TestControlFlood checks the warning names the peer.
//   - A consumer killed mid-stream (its connection reset):
//     TestAttackConsumerKilledMidStream. Bound: the producer releases the
//     subpartition within 5 s (a new request is no longer refused as
//     already consumed).
//   - QUIC streams that never send their Hello: quictransport
//     TestStalledHandshakes (goroutines bounded by MaxHandshakingStreams).
//   - Unauthenticated TCP reads: tcptransport TestTLSUnauthenticated
//     (nothing read, the refusal logged naming the peer).
//   - A producer that vanishes mid-stream (reset, or a silent path past
//     the QUIC idle timeout, with a shortened timeout): faults.go
//     testCutFailsEveryChannel, every channel failed within
//     Options.CutDetection. A producer process that is stopped (SIGSTOP)
//     with its sockets open is detected by keepalives; no test here.
package transporttest
