package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

// runBenchCmd runs exchange bench in-process and returns the report.
func runBenchCmd(t *testing.T, args ...string) (*results.Report, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.json")
	var out, errb bytes.Buffer
	code := Main(append(append([]string{"bench"}, args...), "-json", path), &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := results.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return rep, out.String()
}

func checkClean(t *testing.T, r *results.Result) {
	t.Helper()
	if r.Error != "" || r.Lost != 0 || r.Duplicated != 0 || r.Reordered != 0 || r.ChecksumFailures != 0 || r.Invalid != 0 {
		t.Errorf("%s: not clean: %+v", r.Transport, r)
	}
	if r.Bytes <= 0 || r.Seconds <= 0 || r.MBytesPerSec <= 0 || r.CPUSeconds <= 0 {
		t.Errorf("%s: missing measurements: %+v", r.Transport, r)
	}
	if r.LatencyUS.Samples == 0 || r.LatencyUS.P50 <= 0 || r.LatencyUS.Max < r.LatencyUS.P999 || r.LatencyUS.P999 < r.LatencyUS.P99 || r.LatencyUS.P99 < r.LatencyUS.P50 {
		t.Errorf("%s: latency %+v", r.Transport, r.LatencyUS)
	}
	if !strings.HasPrefix(r.Transport, "raw-") {
		if r.Records <= 0 || r.RecordsPerMs <= 0 || r.Sent != r.Records {
			t.Errorf("%s: records %d sent %d rec/ms %v", r.Transport, r.Records, r.Sent, r.RecordsPerMs)
		}
	}
}

// TestBenchAllTransports runs the bench command in two interleaved rounds
// of half a second per transport (mem, tcp, quic and both raw baselines)
// after a short calibration.
func TestBenchAllTransports(t *testing.T) {
	defer transporttest.CheckGoroutines(t)()
	rep, table := runBenchCmd(t, "-transport", "mem,all", "-duration", "500ms", "-repeat", "2", "-calibrate", "200ms")
	want := []string{"mem", "tcp", "quic", "raw-tcp", "raw-quic"}
	if rep.SchemaVersion != results.SchemaVersion || len(rep.Rounds) != 2 {
		t.Fatalf("schema %d, %d rounds", rep.SchemaVersion, len(rep.Rounds))
	}
	for i, rd := range rep.Rounds {
		if rd.Round != i+1 || strings.Join(rd.Order, ",") != strings.Join(results.Rotate(want, i), ",") || len(rd.Results) != len(want) {
			t.Fatalf("round %d: %+v", i+1, rd)
		}
		for j := range rd.Results {
			if rd.Results[j].Transport != rd.Order[j] {
				t.Errorf("round %d ran %s at %d, order says %s", i+1, rd.Results[j].Transport, j, rd.Order[j])
			}
			checkClean(t, &rd.Results[j])
		}
		if len(rd.Ratios) != 3 {
			t.Errorf("round %d ratios %v", i+1, rd.Ratios)
		}
	}
	if rep.Rounds[0].Order[0] == rep.Rounds[1].Order[0] {
		t.Errorf("both rounds started with %s", rep.Rounds[0].Order[0])
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(want))
	}
	for i, name := range want {
		if rep.Results[i].Transport != name {
			t.Errorf("result %d is %s, want %s", i, rep.Results[i].Transport, name)
		}
		checkClean(t, &rep.Results[i])
	}
	if cal := rep.Calibration; cal == nil || len(cal.Runs) != 4 || len(cal.Diff) != 2 || cal.Duration != "200ms" {
		t.Errorf("calibration %+v", cal)
	}
	s := rep.Summary
	if s == nil || s.Runs != 2 || len(s.Transports) != len(want) || len(s.Ratios) != 3 || s.NoiseFloor <= 0 {
		t.Fatalf("summary %+v", s)
	}
	for _, q := range s.Ratios {
		if q.N != 2 || q.Min > q.Median || q.Median > q.Max || q.Min <= 0 {
			t.Errorf("ratio %+v", q)
		}
	}
	c := rep.Config
	if c.Writers != 4 || c.Readers != 16 || c.Channels != 64 || c.RecordSize != 64 || c.Duration != "500ms" || c.BufferTimeout != "100ms" ||
		c.SegmentSize != 32768 || c.NetworkMemory != 64<<20 || strings.Join(c.Transports, ",") != strings.Join(want, ",") ||
		c.Repeat != 2 || c.Connections != 1 {
		t.Errorf("config %+v", c)
	}
	for _, w := range []string{"tcp", "quic", "raw-tcp", "raw-quic", "2 round(s)", "tcp/raw-tcp", "quic/raw-quic", "quic/tcp", "noise floor", "] ", "p99"} {
		if !strings.Contains(table, w) {
			t.Errorf("table lacks %q:\n%s", w, table)
		}
	}
	// The raw JSON has the documented keys.
	b, _ := json.Marshal(rep)
	for _, k := range []string{`"schema_version":2`, `"rounds"`, `"summary"`, `"calibration"`, `"records_per_ms"`, `"mbytes_per_sec"`, `"latency_us"`, `"p999"`, `"cpu_seconds"`, `"within_noise"`, `"per_run"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON lacks %s", k)
		}
	}
	t.Logf("\n%s", table)
}

// TestBenchVariants covers selectors, record sizes and flush modes on the
// in-memory transport.
func TestBenchVariants(t *testing.T) {
	for _, args := range [][]string{
		{"-selector", "broadcast", "-readers", "5", "-writers", "2"},
		{"-selector", "hash", "-record-size", "8"},
		{"-selector", "hash", "-record-size", "200"},
		{"-record-size", "8", "-buffer-timeout", "0", "-writers", "1", "-readers", "3"},
		{"-record-size", "20", "-buffer-timeout", "-1", "-segment-size", "4KiB"},
		{"-record-size", "100000", "-segment-size", "4KiB", "-readers", "2"}, // records span buffers
		{"-preset", "latency", "-record-rate", "2000"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			rep, _ := runBenchCmd(t, append([]string{"-transport", "mem", "-duration", "300ms", "-repeat", "1"}, args...)...)
			checkClean(t, &rep.Results[0])
		})
	}
}

// TestBenchExactRecords: with -records the counts are exact, in each
// round, and summed over rounds in the results.
func TestBenchExactRecords(t *testing.T) {
	for _, tc := range []struct {
		sel    string
		repeat int
	}{{"roundrobin", 1}, {"hash", 1}, {"broadcast", 1}, {"hash", 3}} {
		sel := tc.sel
		rep, _ := runBenchCmd(t, "-transport", "mem", "-duration", "1m", "-records", "100003", "-selector", sel, "-readers", "3", "-repeat", fmt.Sprint(tc.repeat))
		r := rep.Results[0]
		checkClean(t, &r)
		want := int64(100003)
		if sel == "broadcast" {
			want *= 3
		}
		if len(rep.Rounds) != tc.repeat {
			t.Fatalf("%d rounds", len(rep.Rounds))
		}
		for _, rd := range rep.Rounds {
			if got := rd.Results[0].Records; got != want {
				t.Errorf("%s: round %d: %d records, want %d", sel, rd.Round, got, want)
			}
		}
		want *= int64(tc.repeat)
		if r.Records != want || r.Sent != want {
			t.Errorf("%s: records %d sent %d, want %d", sel, r.Records, r.Sent, want)
		}
	}
}

// TestBenchConnections: -connections spreads tcp's channels over K
// connections per node; every record still arrives once, in order, and
// the JSON records K.
func TestBenchConnections(t *testing.T) {
	defer transporttest.CheckGoroutines(t)()
	rep, table := runBenchCmd(t, "-transport", "tcp", "-connections", "4", "-duration", "300ms", "-repeat", "1", "-calibrate", "0")
	if rep.Config.Connections != 4 || len(rep.Results) != 1 || rep.Calibration != nil {
		t.Fatalf("config %+v, %d results, calibration %+v", rep.Config, len(rep.Results), rep.Calibration)
	}
	checkClean(t, &rep.Results[0])
	if !strings.Contains(table, "4 connections per node") || !strings.Contains(table, "noise floor: not measured") {
		t.Errorf("table:\n%s", table)
	}
}
