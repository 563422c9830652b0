package exchange

import (
	"testing"
	"time"
)

func TestNextFlushTickIsAlignedAndAhead(t *testing.T) {
	base := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		now   time.Time
		every time.Duration
		want  time.Time
	}{
		{"on a tick goes to the next", base, 10 * time.Millisecond, base.Add(10 * time.Millisecond)},
		{"just after a tick", base.Add(time.Nanosecond), 10 * time.Millisecond, base.Add(10 * time.Millisecond)},
		{"just before a tick", base.Add(10*time.Millisecond - time.Nanosecond), 10 * time.Millisecond, base.Add(10 * time.Millisecond)},
		{"mid interval", base.Add(37 * time.Millisecond), 100 * time.Millisecond, base.Add(100 * time.Millisecond)},
		{"odd period", base.Add(5 * time.Millisecond), 7 * time.Millisecond, base.Add(5 * time.Millisecond).Truncate(7 * time.Millisecond).Add(7 * time.Millisecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := nextFlushTick(tc.now, tc.every)
			if !got.Equal(tc.want) {
				t.Fatalf("nextFlushTick(%v, %v) = %v, want %v", tc.now, tc.every, got, tc.want)
			}
			if !got.After(tc.now) {
				t.Fatalf("tick %v is not after now %v", got, tc.now)
			}
		})
	}
}

// Two partitions created at different phases must flush at the same
// instants: that is what lets a transport pack their channels together.
func TestNextFlushTickSharedAcrossPhases(t *testing.T) {
	every := 10 * time.Millisecond
	base := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	first := nextFlushTick(base.Add(3*time.Millisecond), every)
	second := nextFlushTick(base.Add(8*time.Millisecond), every)
	if !first.Equal(second) {
		t.Fatalf("partitions started 5ms apart tick at %v and %v", first, second)
	}
}
