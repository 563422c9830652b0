package results

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestSpreadOf(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name string
		in   []float64
		want Spread
	}{
		{"empty", nil, Spread{}},
		{"one", []float64{7}, Spread{Median: 7, Min: 7, Max: 7, N: 1}},
		{"odd unsorted", []float64{3, 1, 2}, Spread{Median: 2, Min: 1, Max: 3, N: 3}},
		{"even: mean of the middle two", []float64{4, 1, 3, 10}, Spread{Median: 3.5, Min: 1, Max: 10, N: 4}},
		{"NaN and Inf skipped", []float64{nan, 5, math.Inf(1), 1, 3}, Spread{Median: 3, Min: 1, Max: 5, N: 3}},
		{"only NaN", []float64{nan}, Spread{}},
		{"negative", []float64{-2, -8, 0}, Spread{Median: -2, Min: -8, Max: 0, N: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SpreadOf(tc.in); got != tc.want {
				t.Fatalf("SpreadOf(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSpreadRelativeAndFormat(t *testing.T) {
	for _, tc := range []struct {
		s      Spread
		rel    float64
		format string
	}{
		{Spread{Median: 100, Min: 90, Max: 110, N: 3}, 0.2, "100.0 [90.0-110.0]"},
		{Spread{Median: 0.5, Min: 0.5, Max: 0.5, N: 1}, 0, "0.5"},
		{Spread{}, 0, "-"},
		{Spread{Median: 0, Min: -1, Max: 1, N: 2}, 0, "0.0 [-1.0-1.0]"},
	} {
		if got := tc.s.Relative(); math.Abs(got-tc.rel) > 1e-12 {
			t.Errorf("%+v: relative %v, want %v", tc.s, got, tc.rel)
		}
		if got := tc.s.Format("%.1f"); got != tc.format {
			t.Errorf("%+v: format %q, want %q", tc.s, got, tc.format)
		}
	}
}

func TestWithinNoise(t *testing.T) {
	r := func(med float64) Spread { return Spread{Median: med, Min: med, Max: med, N: 3} }
	for _, tc := range []struct {
		ratio Spread
		floor float64
		want  bool
	}{
		{r(0.95), 0.06, true},  // 5% off, floor 6%
		{r(1.05), 0.06, true},  // above 1 too
		{r(0.93), 0.06, false}, // 7% off
		{r(1.10), 0.06, false},
		{r(1.00), 0, false}, // floor not measured: never noise
		{Spread{}, 0.5, false},
		{r(0.94), 0.06, true}, // on the boundary: within
	} {
		if got := WithinNoise(tc.ratio, tc.floor); got != tc.want {
			t.Errorf("WithinNoise(median %v, floor %v) = %v, want %v", tc.ratio.Median, tc.floor, got, tc.want)
		}
	}
}

func TestRelativeDiff(t *testing.T) {
	for _, tc := range []struct{ a, b, want float64 }{
		{100, 100, 0}, {90, 110, 0.2}, {110, 90, 0.2}, {0, 0, 0}, {0, 10, 2},
	} {
		if got := RelativeDiff(tc.a, tc.b); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("RelativeDiff(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRotate(t *testing.T) {
	items := []string{"tcp", "raw-tcp", "quic", "raw-quic"}
	for _, tc := range []struct {
		round int
		want  []string
	}{
		{0, []string{"tcp", "raw-tcp", "quic", "raw-quic"}},
		{1, []string{"raw-tcp", "quic", "raw-quic", "tcp"}},
		{3, []string{"raw-quic", "tcp", "raw-tcp", "quic"}},
		{4, []string{"tcp", "raw-tcp", "quic", "raw-quic"}},
	} {
		if got := Rotate(items, tc.round); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("round %d: %v, want %v", tc.round, got, tc.want)
		}
	}
	// Over len(items) rounds every item runs first once and each round
	// holds every item.
	first := map[string]int{}
	for r := range len(items) {
		o := Rotate(items, r)
		first[o[0]]++
		seen := map[string]bool{}
		for _, x := range o {
			seen[x] = true
		}
		if len(seen) != len(items) {
			t.Fatalf("round %d lost an item: %v", r, o)
		}
	}
	for _, x := range items {
		if first[x] != 1 {
			t.Errorf("%s ran first %d times in %d rounds", x, first[x], len(items))
		}
	}
	if len(Rotate(nil, 3)) != 0 {
		t.Error("empty")
	}
}

// res is a loopback result moving mbps MB/s of stream in one second.
func res(name string, mbps float64) Result {
	r := Result{Transport: name, StreamBytes: int64(mbps * 1e6), Bytes: int64(mbps * 1e6), Seconds: 1}
	if !isRaw(name) {
		r.Records = int64(mbps * 1e6 / 68)
	}
	r.Finish()
	return r
}

func TestSummariseRounds(t *testing.T) {
	mk := func(n int, tcp, raw, quic, rawq float64) Round {
		rs := []Result{res(TCP, tcp), res(RawTCP, raw), res(QUIC, quic), res(RawQUIC, rawq)}
		return Round{Round: n, Results: rs, Ratios: RoundRatios(rs)}
	}
	// raw-tcp swings 1000..1300 (30% of its median 1100): the ratio within
	// each round stays 0.8, which comparing medians would not show.
	rounds := []Round{mk(1, 800, 1000, 300, 310), mk(2, 1040, 1300, 290, 300), mk(3, 880, 1100, 305, 320)}
	cal := &Calibration{Duration: "500ms", Diff: map[string]float64{RawTCP: 0.02, RawQUIC: 0.08}}
	s := SummariseRounds(rounds, cal)
	if s.Runs != 3 || len(s.Transports) != 4 || s.Transports[0].Transport != TCP {
		t.Fatalf("%+v", s)
	}
	if got := s.Transports[1].StreamMBps; got.Median != 1100 || got.Min != 1000 || got.Max != 1300 {
		t.Errorf("raw-tcp %+v", got)
	}
	if math.Abs(s.RawSpread[RawTCP]-300.0/1100) > 1e-9 || math.Abs(s.NoiseFloor-300.0/1100) > 1e-9 {
		t.Errorf("raw spread %v, noise floor %v", s.RawSpread, s.NoiseFloor)
	}
	byName := map[string]RatioSummary{}
	for _, q := range s.Ratios {
		byName[q.Name] = q
	}
	// 20% off 1 is within a 27% noise floor.
	if q := byName["tcp/raw-tcp"]; math.Abs(q.Median-0.8) > 1e-9 || math.Abs(q.Max-q.Min) > 1e-9 || len(q.Per) != 3 || !q.WithinNoise {
		t.Errorf("tcp/raw-tcp %+v", q)
	}
	// quic/raw-quic: 0.953..0.968, within a 27% noise floor.
	if q := byName["quic/raw-quic"]; !q.WithinNoise || q.Min < 0.95 || q.Max > 0.97 {
		t.Errorf("quic/raw-quic %+v", q)
	}
	if _, ok := byName["quic/tcp"]; !ok {
		t.Error("no quic/tcp ratio")
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "raw-tcp varied by 27%") {
		t.Errorf("warnings %q", s.Warnings)
	}
	// The calibration alone sets the floor when rounds do not vary.
	steady := []Round{mk(1, 800, 1000, 300, 310), mk(2, 800, 1000, 300, 310)}
	s = SummariseRounds(steady, cal)
	if s.NoiseFloor != 0.08 || len(s.Warnings) != 0 {
		t.Errorf("steady: floor %v warnings %q", s.NoiseFloor, s.Warnings)
	}
	// ... and then 0.8 is a real difference, 0.968 is not.
	for _, q := range s.Ratios {
		if want := q.Name == "quic/raw-quic"; q.WithinNoise != want {
			t.Errorf("steady: %s %.3f within noise %v, want %v", q.Name, q.Median, q.WithinNoise, want)
		}
	}
	// A noisy calibration warns.
	noisy := &Calibration{Diff: map[string]float64{RawQUIC: 0.25}}
	if s := SummariseRounds(steady, noisy); len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "calibration") {
		t.Errorf("noisy calibration: %q", s.Warnings)
	}
}

func TestRoundRatiosSkipFailedRuns(t *testing.T) {
	rs := []Result{res(TCP, 800), res(RawTCP, 1000), res(QUIC, 300)}
	rs[2].Error = "boom"
	got := RoundRatios(rs)
	if len(got) != 1 || math.Abs(got["tcp/raw-tcp"]-0.8) > 1e-9 {
		t.Fatalf("%v", got)
	}
}

func TestAggregate(t *testing.T) {
	a := res(TCP, 100)
	a.Lost = 2
	a.LatencyUS = Latency{P50: 10, P99: 50, P999: 60, Max: 70, Samples: 5}
	b := res(TCP, 300)
	b.LatencyUS = Latency{P50: 30, P99: 90, P999: 95, Max: 200, Samples: 7}
	c := res(TCP, 200)
	c.LatencyUS = Latency{P50: 20, P99: 70, P999: 80, Max: 90, Samples: 1}
	d := res(TCP, 999)
	d.Error = "reset"
	got := Aggregate([][]Result{{a, res(RawTCP, 1)}, {b}, {c}, {d}}, func(i int) string { return "seed " + string(rune('1'+i)) })
	if len(got) != 2 || got[0].Transport != TCP || got[1].Transport != RawTCP {
		t.Fatalf("%+v", got)
	}
	g := got[0]
	if g.Lost != 2 || g.Seconds != 4 || math.Abs(g.MBytesPerSec-200) > 1e-9 {
		t.Errorf("counts/median rate: %+v", g)
	}
	if g.LatencyUS != (Latency{P50: 20, P99: 70, P999: 80, Max: 200, Samples: 13}) {
		t.Errorf("latency %+v", g.LatencyUS)
	}
	if g.Error != "seed 4: reset" || g.Clean() {
		t.Errorf("error %q", g.Error)
	}
}

func TestSummariseSeeds(t *testing.T) {
	run := func(seed int64, tcpP99, quicP99 float64) SeedRun {
		tr := Result{Transport: TCP, MBytesPerSec: 5, LatencyUS: Latency{P50: 1, P99: tcpP99, Samples: 10}}
		qr := Result{Transport: QUIC, MBytesPerSec: 4, LatencyUS: Latency{P50: 2, P99: quicP99, Samples: 10}}
		return SeedRun{Seed: seed, Results: []Result{tr, qr, {Transport: "ideal", LatencyUS: Latency{P99: 20, Samples: 3}}}}
	}
	s := SummariseSeeds([]SeedRun{run(1, 200, 100), run(2, 500, 150), run(3, 300, 240)})
	if !reflect.DeepEqual(s.Seeds, []int64{1, 2, 3}) || len(s.Transports) != 3 {
		t.Fatalf("%+v", s)
	}
	if p := s.Transports[0].P99US; p.Median != 300 || p.Min != 200 || p.Max != 500 {
		t.Errorf("tcp p99 %+v", p)
	}
	names := map[string]RatioSummary{}
	for _, q := range s.Ratios {
		names[q.Name] = q
	}
	q := names["quic/tcp p99"]
	if !reflect.DeepEqual(q.Per, []float64{0.5, 0.3, 0.8}) || q.Median != 0.5 || q.Min != 0.3 || q.Max != 0.8 {
		t.Errorf("p99 ratio %+v", q)
	}
	if m := names["quic/tcp Mbit/s"]; m.Median != 0.8 || names["quic/tcp p50"].Median != 2 {
		t.Errorf("ratios %+v", s.Ratios)
	}
}
