package transporttest

import (
	"context"
	"fmt"
	"runtime"
	"sort"
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
// only stragglers of asynchronous library teardown get the grace period:
// the check polls until they are gone or LeakGrace has passed, and then
// fails with the stacks of every leaked goroutine.
func CheckGoroutines(t testing.TB) func() {
	t.Helper()
	before := ours()
	return func() {
		t.Helper()
		if leaked := waitGoroutines(before, LeakGrace); len(leaked) > 0 {
			t.Errorf("%d goroutine(s) leaked:\n%s", len(leaked), goroutineDump(leaked))
		}
	}
}

// LeakGrace bounds how long CheckGoroutines waits for goroutines that
// are still winding down after everything was closed.
const LeakGrace = 3 * time.Second

// waitGoroutines polls until no goroutine of ours is running that was not
// in before, or until grace has passed; it returns the stragglers.
func waitGoroutines(before map[string]string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		var leaked []string
		for id, stack := range ours() {
			if _, ok := before[id]; !ok {
				leaked = append(leaked, stack)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			sort.Strings(leaked)
			return leaked
		}
		time.Sleep(10 * time.Millisecond) // bounded poll for async teardown, not synchronisation
	}
}

// goroutineDump joins the stacks, at most maxDumped of them: a leak of
// thousands of channel goroutines repeats a handful of stacks.
func goroutineDump(stacks []string) string {
	const maxDumped = 20
	var b strings.Builder
	for i, s := range stacks {
		if i == maxDumped {
			fmt.Fprintf(&b, "... and %d more\n", len(stacks)-maxDumped)
			break
		}
		b.WriteString(s)
		b.WriteString("\n\n")
	}
	return b.String()
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

// NewEnv creates an environment that is closed, with a check that its
// network pool is whole again, when t ends.
func NewEnv(t testing.TB, ctx context.Context, cfg exchange.Config) *exchange.Environment {
	t.Helper()
	e, err := exchange.NewEnvironment(ctx, cfg)
	if err != nil {
		t.Fatalf("NewEnvironment: %v", err)
	}
	t.Cleanup(func() {
		e.Close()
		CheckPools(t, e)
	})
	return e
}
