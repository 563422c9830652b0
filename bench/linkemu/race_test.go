//go:build race

package linkemu

const raceEnabled = true
