// Package cli implements the exchange command: bench (producers and
// consumers in one process over each transport, plus raw baselines, in
// interleaved rounds or, on the emulated link, once per seed), serve
// (producer partitions in this process) and consume (input gates reading
// a serve process). cmd/exchange is a thin wrapper around Main; the
// package is internal to it, so nothing here is public API.
package cli
