package lossy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qexchange/qexchange/bench/results"
)

// seedResult is a link result with p99 in ms and a CDF through it.
func seedResult(name string, p99ms, mbps float64) results.Result {
	return results.Result{
		Transport: name, MBytesPerSec: mbps / 8,
		LatencyUS:  results.Latency{P50: p99ms * 500, P99: p99ms * 1e3, P999: p99ms * 1.2e3, Max: p99ms * 2e3, Samples: 100},
		LatencyCDF: []results.CDFPoint{{LatencyUS: p99ms * 500, Fraction: 0.5}, {LatencyUS: p99ms * 1e3, Fraction: 0.99}, {LatencyUS: p99ms * 2e3, Fraction: 1}},
	}
}

func seedPoint(load float64, tcp, quic []float64) results.SweepPoint {
	var runs []results.SeedRun
	for i := range tcp {
		runs = append(runs, results.SeedRun{Seed: int64(i + 1), Link: &results.Link{Loss: 0.01, RTT: "20ms", RateBits: 100e6, Load: load},
			Results: []results.Result{seedResult("tcp", tcp[i], 40*load), seedResult("quic", quic[i], 45*load), seedResult(Ideal, 20, 50*load)}})
	}
	all := make([][]results.Result, len(runs))
	for i := range runs {
		all[i] = runs[i].Results
	}
	return results.SweepPoint{Param: SweepLoad, Value: "x", X: load, Link: runs[0].Link,
		Results: results.Aggregate(all, func(int) string { return "" }), Seeds: runs, Summary: results.SummariseSeeds(runs)}
}

func TestWriteSeedSummary(t *testing.T) {
	pt := seedPoint(0.05, []float64{200, 500, 300}, []float64{100, 150, 240})
	var b bytes.Buffer
	if err := WriteSeedSummary(&b, "[load=0.05] ", &pt); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"[load=0.05] over 3 seeds (1,2,3)", "300 [200-500]", "150 [100-240]", "seed 2", "0.30", "p99 0.50 [0.30-0.80]"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestLoadSweepChartsWithSeeds(t *testing.T) {
	sw, err := ParseSweep("load=0.05,0.5")
	if err != nil {
		t.Fatal(err)
	}
	doc := &results.Sweep{Sweep: []results.SweepPoint{
		seedPoint(0.05, []float64{200, 500}, []float64{100, 150}),
		seedPoint(0.5, []float64{900, 1500}, []float64{400, 800}),
	}}
	dir := t.TempDir()
	files, err := WriteSweepCharts(dir, doc, sw)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cdf-load-0.05.png", "cdf-load-0.5.png", "p99-vs-load.png", "throughput-vs-load.png"}
	if len(files) != len(want) {
		t.Fatalf("files %v", files)
	}
	for i, f := range want {
		if filepath.Base(files[i]) != f {
			t.Errorf("file %d: %s, want %s", i, files[i], f)
		}
		if st, err := os.Stat(files[i]); err != nil || st.Size() < 5000 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var b bytes.Buffer
	WriteSweepSummary(&b, doc)
	if !strings.Contains(b.String(), "sweep over load") || !strings.Contains(b.String(), "1200 [900-1500]") {
		t.Errorf("summary:\n%s", b.String())
	}
}

func TestSeedCDFSeriesBand(t *testing.T) {
	pt := seedPoint(0.05, []float64{200, 400, 300}, []float64{100, 150, 240})
	ss := seedCDFSeries(pt.Seeds)
	if len(ss) != 3 || ss[0].Name != "tcp" {
		t.Fatalf("%+v", ss)
	}
	// At the 0.99 fraction: median 300 ms, band 200..400 ms.
	var found bool
	for _, p := range ss[0].Points {
		if p.Y == 0.99 {
			found = p.X == 300
		}
	}
	if !found {
		t.Errorf("tcp median at 0.99 missing: %+v", ss[0].Points)
	}
	lo, hi := 1e18, 0.0
	for _, p := range ss[0].Band {
		if p.Y == 0.99 {
			lo, hi = min(lo, p.X), max(hi, p.X)
		}
	}
	if lo != 200 || hi != 400 {
		t.Errorf("band at 0.99: %v..%v", lo, hi)
	}
}

func TestParseLoadSweep(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"load=0.05,0.1,0.2,0.35,0.5", ""},
		{"load=1", ""},
		{"load=0", "outside (0, 1]"},
		{"load=1.01", "outside (0, 1]"},
		{"load=-0.1", "outside (0, 1]"},
		{"load=NaN", "outside (0, 1]"},
		{"load=lots", "bad load"},
	} {
		sw, err := ParseSweep(tc.in)
		if tc.err == "" {
			if err != nil || sw.Param != SweepLoad {
				t.Errorf("%s: %v", tc.in, err)
			}
			if l, ok := sw.LoadAt(0); !ok || l != sw.X[0] {
				t.Errorf("%s: LoadAt %v %v", tc.in, l, ok)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.err)
		}
	}
	if sw, _ := ParseSweep("loss=1%"); sw != nil {
		if _, ok := sw.LoadAt(0); ok {
			t.Error("loss sweep has a load")
		}
	}
}
