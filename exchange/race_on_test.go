//go:build race

package exchange_test

// raceEnabled: the race detector slows everything ~10x; the heaviest
// tests scale down under it.
const raceEnabled = true
