package results

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Repeated runs: the loopback bench runs its transports interleaved in
// rounds, the link bench once per seed. Every run is kept; the summary
// reduces them to median and range, and ratios are formed within one round
// (or seed) before they are summarised, so a slow moment of the machine
// moves both sides of a ratio together.

// Round is one round of the loopback bench: every transport once, in
// Order.
type Round struct {
	Round   int      `json:"round"` // 1-based
	Order   []string `json:"order"`
	Results []Result `json:"results"`
	// Ratios within this round, by name ("tcp/raw-tcp", "quic/tcp"): the
	// ratio of stream MB/s.
	Ratios map[string]float64 `json:"ratios,omitempty"`
}

// SeedRun is one seed of the link bench: the link (probed with this seed)
// and every transport's result over it, including the ideal limit.
type SeedRun struct {
	Seed    int64    `json:"seed"`
	Link    *Link    `json:"link"`
	Results []Result `json:"results"`
}

// Calibration is the short run-to-run measurement before the rounds: each
// raw baseline twice.
type Calibration struct {
	Duration string   `json:"duration"`
	Runs     []Result `json:"runs"`
	// Diff per baseline: |a-b| / mean of its two runs' MB/s.
	Diff map[string]float64 `json:"diff"`
}

// TransportSummary is one transport's figures over all rounds or seeds.
// Spreads with n = 0 were not measured.
type TransportSummary struct {
	Transport    string `json:"transport"`
	Runs         int    `json:"runs"`
	RecordsPerMs Spread `json:"records_per_ms"`
	StreamMBps   Spread `json:"stream_mbytes_per_sec"`
	// Mbps is record payload delivered in 10^6 bits/s (the link bench's
	// figure).
	Mbps       Spread `json:"mbit_per_sec"`
	P50US      Spread `json:"p50_us"`
	P99US      Spread `json:"p99_us"`
	P999US     Spread `json:"p999_us"`
	CPUSeconds Spread `json:"cpu_seconds"`
}

// RatioSummary is one ratio formed within each round (or seed).
type RatioSummary struct {
	Name string `json:"name"` // "tcp/raw-tcp", "quic/tcp p99"
	// Per is the ratio in each round or seed, in run order (NaN-free: a
	// round where it could not be formed is left out).
	Per []float64 `json:"per_run"`
	Spread
	// WithinNoise: the median's distance from 1 is within the noise floor
	// (loopback only).
	WithinNoise bool `json:"within_noise"`
}

// Summary reduces the rounds (loopback) or seeds (link) of one setting.
type Summary struct {
	Runs       int                `json:"runs"`
	Seeds      []int64            `json:"seeds,omitempty"`
	Transports []TransportSummary `json:"transports"`
	Ratios     []RatioSummary     `json:"ratios"`
	// NoiseFloor is the relative run-to-run variation: the largest of the
	// calibration's differences and the raw baselines' spread over the
	// rounds (loopback only; 0: not measured).
	NoiseFloor float64 `json:"noise_floor,omitempty"`
	// RawSpread is each raw baseline's (max-min)/median over the rounds.
	RawSpread map[string]float64 `json:"raw_spread,omitempty"`
	Warnings  []string           `json:"warnings,omitempty"`
}

// Ratio names.
const (
	QUICOverTCP = QUIC + "/" + TCP
)

// RoundRatios are the loopback ratios of one round's results, by stream
// MB/s: each transport against its raw baseline and quic against tcp.
func RoundRatios(rs []Result) map[string]float64 {
	find := func(name string) *Result {
		for i := range rs {
			if rs[i].Transport == name {
				return &rs[i]
			}
		}
		return nil
	}
	out := map[string]float64{}
	add := func(a, b string) {
		x, y := find(a), find(b)
		if x == nil || y == nil || y.StreamMBps() <= 0 || x.Error != "" || y.Error != "" {
			return
		}
		out[a+"/"+b] = x.StreamMBps() / y.StreamMBps()
	}
	add(TCP, RawTCP)
	add(QUIC, RawQUIC)
	add(QUIC, TCP)
	return out
}

// roundRatioOrder is the order ratios are listed in.
var roundRatioOrder = []string{TCP + "/" + RawTCP, QUIC + "/" + RawQUIC, QUICOverTCP}

// SummariseRounds summarises the loopback rounds; cal may be nil.
func SummariseRounds(rounds []Round, cal *Calibration) *Summary {
	runs := make([][]Result, len(rounds))
	for i := range rounds {
		runs[i] = rounds[i].Results
	}
	s := &Summary{Runs: len(rounds), Transports: summariseTransports(runs)}
	s.RawSpread = map[string]float64{}
	for _, t := range s.Transports {
		if isRaw(t.Transport) && t.StreamMBps.N > 1 {
			s.RawSpread[t.Transport] = t.StreamMBps.Relative()
			s.NoiseFloor = max(s.NoiseFloor, t.StreamMBps.Relative())
		}
	}
	if cal != nil {
		for _, d := range cal.Diff {
			s.NoiseFloor = max(s.NoiseFloor, d)
		}
	}
	for _, name := range roundRatioOrder {
		var per []float64
		for _, r := range rounds {
			if v, ok := r.Ratios[name]; ok {
				per = append(per, v)
			}
		}
		if len(per) == 0 {
			continue
		}
		rs := RatioSummary{Name: name, Per: per, Spread: SpreadOf(per)}
		rs.WithinNoise = WithinNoise(rs.Spread, s.NoiseFloor)
		s.Ratios = append(s.Ratios, rs)
	}
	s.Warnings = rawWarnings(s.RawSpread, cal)
	return s
}

// rawWarnings names every raw baseline whose spread (over the rounds or
// between the calibration's two runs) exceeds MaxRawSpread.
func rawWarnings(spread map[string]float64, cal *Calibration) []string {
	var w []string
	for _, name := range sortedKeys(spread) {
		if v := spread[name]; v > MaxRawSpread {
			w = append(w, fmt.Sprintf("%s varied by %.0f%% between rounds (over %.0f%%): the machine is too busy for these figures to be trusted", name, v*100, MaxRawSpread*100))
		}
	}
	if cal != nil {
		for _, name := range sortedKeys(cal.Diff) {
			if v := cal.Diff[name]; v > MaxRawSpread {
				w = append(w, fmt.Sprintf("%s varied by %.0f%% between its two calibration runs (over %.0f%%): the machine is too busy for these figures to be trusted", name, v*100, MaxRawSpread*100))
			}
		}
	}
	return w
}

func sortedKeys(m map[string]float64) []string {
	k := make([]string, 0, len(m))
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// SeedRatioNames are the link bench's per-seed ratios, quic over tcp.
var seedRatios = []struct {
	name string
	of   func(*Result) float64
}{
	{QUICOverTCP + " p50", func(r *Result) float64 { return latencyOr(r, r.LatencyUS.P50) }},
	{QUICOverTCP + " p99", func(r *Result) float64 { return latencyOr(r, r.LatencyUS.P99) }},
	{QUICOverTCP + " Mbit/s", func(r *Result) float64 { return r.MBytesPerSec * 8 }},
}

func latencyOr(r *Result, v float64) float64 {
	if r.LatencyUS.Samples == 0 {
		return math.NaN()
	}
	return v
}

// SummariseSeeds summarises the link bench's seeds: every transport's
// figures and the per-seed ratios of quic over tcp (p50, p99, Mbit/s).
func SummariseSeeds(seeds []SeedRun) *Summary {
	runs := make([][]Result, len(seeds))
	s := &Summary{Runs: len(seeds)}
	for i := range seeds {
		runs[i] = seeds[i].Results
		s.Seeds = append(s.Seeds, seeds[i].Seed)
	}
	s.Transports = summariseTransports(runs)
	for _, sr := range seedRatios {
		var per []float64
		for _, rs := range runs {
			q, t := findIn(rs, QUIC), findIn(rs, TCP)
			if q == nil || t == nil {
				continue
			}
			a, b := sr.of(q), sr.of(t)
			if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
				continue
			}
			per = append(per, a/b)
		}
		if len(per) > 0 {
			s.Ratios = append(s.Ratios, RatioSummary{Name: sr.name, Per: per, Spread: SpreadOf(per)})
		}
	}
	return s
}

func findIn(rs []Result, name string) *Result {
	for i := range rs {
		if rs[i].Transport == name {
			return &rs[i]
		}
	}
	return nil
}

// transportOrder lists the transports of runs in order of first
// appearance.
func transportOrder(runs [][]Result) []string {
	var order []string
	seen := map[string]bool{}
	for _, rs := range runs {
		for _, r := range rs {
			if !seen[r.Transport] {
				seen[r.Transport] = true
				order = append(order, r.Transport)
			}
		}
	}
	return order
}

func summariseTransports(runs [][]Result) []TransportSummary {
	var out []TransportSummary
	for _, name := range transportOrder(runs) {
		var rpm, smb, mbps, p50, p99, p999, cpu []float64
		n := 0
		for _, rs := range runs {
			r := findIn(rs, name)
			if r == nil || r.Error != "" {
				continue
			}
			n++
			if r.Records > 0 {
				rpm = append(rpm, r.RecordsPerMs)
			}
			smb = append(smb, r.StreamMBps())
			mbps = append(mbps, r.MBytesPerSec*8)
			if r.LatencyUS.Samples > 0 {
				p50 = append(p50, r.LatencyUS.P50)
				p99 = append(p99, r.LatencyUS.P99)
				p999 = append(p999, r.LatencyUS.P999)
			}
			cpu = append(cpu, r.CPUSeconds)
		}
		out = append(out, TransportSummary{
			Transport: name, Runs: n, RecordsPerMs: SpreadOf(rpm), StreamMBps: SpreadOf(smb), Mbps: SpreadOf(mbps),
			P50US: SpreadOf(p50), P99US: SpreadOf(p99), P999US: SpreadOf(p999), CPUSeconds: SpreadOf(cpu),
		})
	}
	return out
}

// Aggregate folds repeated runs into one result per transport (in order
// of first appearance), so that readers of the one-run-per-transport
// "results" keep working: verification counts, records, bytes, seconds,
// latency samples and CPU are summed; rates and latency percentiles are the
// medians over the runs (so records / seconds need not equal rec/ms); max
// latency is the largest; errors are joined, each prefixed with its run's
// label (label(i) names run i, e.g. "round 2").
func Aggregate(runs [][]Result, label func(i int) string) []Result {
	var out []Result
	for _, name := range transportOrder(runs) {
		a := Result{Transport: name}
		var rpm, mbs, p50, p99, p999 []float64
		var errs []string
		var clean []*Result
		for i, rs := range runs {
			r := findIn(rs, name)
			if r == nil {
				continue
			}
			a.Records += r.Records
			a.Bytes += r.Bytes
			a.StreamBytes += r.StreamBytes
			a.Seconds += r.Seconds
			a.Sent += r.Sent
			a.Lost += r.Lost
			a.Duplicated += r.Duplicated
			a.Reordered += r.Reordered
			a.ChecksumFailures += r.ChecksumFailures
			a.Invalid += r.Invalid
			a.CPUSeconds += r.CPUSeconds
			if r.Error != "" {
				errs = append(errs, label(i)+": "+r.Error)
				continue
			}
			clean = append(clean, r)
			rpm = append(rpm, r.RecordsPerMs)
			mbs = append(mbs, r.MBytesPerSec)
			if r.LatencyUS.Samples > 0 {
				p50 = append(p50, r.LatencyUS.P50)
				p99 = append(p99, r.LatencyUS.P99)
				p999 = append(p999, r.LatencyUS.P999)
				a.LatencyUS.Max = max(a.LatencyUS.Max, r.LatencyUS.Max)
				a.LatencyUS.Samples += r.LatencyUS.Samples
			}
		}
		a.RecordsPerMs = SpreadOf(rpm).Median
		a.MBytesPerSec = SpreadOf(mbs).Median
		a.LatencyUS.P50, a.LatencyUS.P99, a.LatencyUS.P999 = SpreadOf(p50).Median, SpreadOf(p99).Median, SpreadOf(p999).Median
		a.Error = strings.Join(errs, "; ")
		foldExtras(&a, clean)
		out = append(out, a)
	}
	return out
}
