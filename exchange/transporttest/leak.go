package transporttest

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// leakMarkers select goroutines that belong to this module or to the
// transport libraries it drives.
var leakMarkers = []string{"qexchange/qexchange/", "quic-go/quic-go"}

// CheckGoroutines returns a function that fails t if goroutines started by
// this module (or by quic-go on its behalf) are still running; call it
// after everything is closed. Close calls wait for their goroutines, so
// only stragglers of asynchronous library teardown get the grace period.
func CheckGoroutines(t testing.TB) func() {
	t.Helper()
	before := ours()
	return func() {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		var leaked []string
		for {
			leaked = leaked[:0]
			for id, stack := range ours() {
				if _, ok := before[id]; !ok {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // bounded poll for async teardown, not synchronisation
		}
		if len(leaked) > 0 {
			t.Errorf("%d goroutine(s) leaked; first:\n%s", len(leaked), leaked[0])
		}
	}
}

// ours maps goroutine headers to stacks for the module's goroutines.
func ours() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	m := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(g, "\n")
		if strings.Contains(g, "transporttest.") || strings.Contains(g, "_test.go") || strings.Contains(g, "testing.tRunner") {
			continue
		}
		for _, mk := range leakMarkers {
			if strings.Contains(g, mk) {
				id, _, _ := strings.Cut(header, " [")
				m[id] = g
				break
			}
		}
	}
	return m
}

// CheckPools fails t if any of envs' network pools has buffers out.
func CheckPools(t testing.TB, envs ...*exchange.Environment) {
	t.Helper()
	for i, e := range envs {
		if n := e.BufferPool().Outstanding(); n != 0 {
			t.Errorf("environment %d: %d network buffer(s) leaked", i, n)
		}
	}
}
