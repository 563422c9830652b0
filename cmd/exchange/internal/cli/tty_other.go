//go:build !linux

package cli

// isTerminal: progress lines are only drawn on Linux terminals.
func isTerminal(uintptr) bool { return false }
