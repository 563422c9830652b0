// Package memtransport is an in-memory exchange.Transport: nodes in one
// process connected through a Network, with no sockets. It exists so the
// model and the conformance suite run before any byte crosses a network,
// and it behaves like a real transport where the model can tell: one
// connection (and one serving goroutine) per pair of nodes shared by all
// channels, payloads copied into the receiver's credit-backed buffers,
// asynchronous delivery, and connection loss when a node closes.
package memtransport
