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
// tests with hostile input; package faultproxy holds the TCP connection
// cutter and the UDP loss proxy.
package transporttest
