package workload

import "testing"

func TestStallOf(t *testing.T) {
	for _, tc := range []struct{ send, arrive, prev, grace, want int64 }{
		{0, 50, 0, 100, 0},     // on time
		{0, 150, 0, 100, 50},   // 50 late, nothing arrived since due
		{0, 150, 120, 100, 30}, // something arrived at 120: stalled only since
		{0, 150, 200, 100, 0},  // prev after t cannot happen in order, clamps to 0
		{100, 150, 0, 100, 0},  // due 200: not yet due
	} {
		if got := stallOf(tc.send, tc.arrive, tc.prev, tc.grace); got != tc.want {
			t.Errorf("stallOf(%+v) = %d, want %d", tc, got, tc.want)
		}
	}
}

func TestChannelMeter(t *testing.T) {
	m := ChannelMeter{From: 1000, Grace: 100}
	m.Arrive(500, 700, 64)   // warm-up: not measured, sets prev
	m.Arrive(1000, 1050, 64) // on time
	// A burst held up by a loss: due at 1200, arrive at 1500 -> 300 stall;
	// the rest of the burst adds nothing (prev = 1500).
	m.Arrive(1100, 1500, 64)
	m.Arrive(1150, 1500, 64)
	m.Arrive(1390, 1500, 64)
	// Sent 1400 (due 1500), arrives 1800: stalled from 1500 -> 300.
	m.Arrive(1400, 1800, 64)
	s := m.Stats()
	if s.Records != 5 || s.Bytes != 5*64 || s.LastArrival != 1800 || s.From != 1000 || s.StallNs != 600 {
		t.Fatalf("%+v", s)
	}
	if got := s.Seconds(); got != 800e-9 {
		t.Errorf("seconds %v", got)
	}
	if got := s.Mbps(); got != 5*64*8/800e-9/1e6 {
		t.Errorf("mbps %v", got)
	}
	// The first measured record after nothing at all adds no stall (no
	// t_prev: connection setup is the warm-up's business).
	m = ChannelMeter{Grace: 100}
	m.Arrive(0, 5000, 64)
	if m.Stats().StallNs != 0 {
		t.Errorf("first arrival stalled: %+v", m.Stats())
	}
}
