//go:build !race

package quictransport_test

const raceEnabled = false
