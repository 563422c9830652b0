// Package transporttest is the conformance suite every exchange.Transport
// must pass, and the leak checks the project's tests share.
//
// A transport's test calls Run with a factory; the suite builds
// environments (nodes) on it and checks the properties of DESIGN.md
// section 6: every record arrives once and in order, a stalled consumer
// does not slow the other channels of its connection, memory stays within
// the pools, cancel and close release every buffer and goroutine, and
// remote failures surface from InputGate.Next as typed errors.
package transporttest
