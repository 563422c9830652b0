//go:build race

package rpc

// raceEnabled: the race detector slows quic-go ~10x; the heaviest tests
// scale down under it.
const raceEnabled = true
