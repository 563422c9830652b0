//go:build race

package main

// raceEnabled: the test builds the processes with -race too, reusing the
// packages the test itself was built from and checking them for races.
const raceEnabled = true
