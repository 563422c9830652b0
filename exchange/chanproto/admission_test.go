package chanproto

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"
)

// TestAdmission: connections are admitted up to the total cap and the
// per-address cap, refusals are counted, and a connection that leaves
// frees its place in both.
func TestAdmission(t *testing.T) {
	a := NewAdmission(3, 2, zerolog.Nop())
	steps := []struct {
		remote string
		want   bool
	}{
		{"10.0.0.1:1000", true},
		{"10.0.0.1:1001", true},
		{"10.0.0.1:1002", false}, // per address
		{"10.0.0.2:1000", true},
		{"10.0.0.3:1000", false}, // total
		{"[::1]:1000", false},
	}
	for _, s := range steps {
		if got := a.Admit(s.remote); got != s.want {
			t.Fatalf("Admit(%s) = %v, want %v", s.remote, got, s.want)
		}
	}
	if n := a.Refused(); n != 3 {
		t.Fatalf("Refused = %d, want 3", n)
	}
	a.Leave("10.0.0.1:1000")
	if !a.Admit("10.0.0.1:2000") {
		t.Fatal("a place freed by Leave was not given again")
	}
	for i := range 2 {
		a.Leave(fmt.Sprintf("10.0.0.1:%d", 1001+i*999))
	}
	a.Leave("10.0.0.2:1000")
	if a.total != 0 || len(a.byAddr) != 0 {
		t.Fatalf("after every connection left: total %d, by address %v", a.total, a.byAddr)
	}
}
