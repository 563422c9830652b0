//go:build !race

// The lossy-link end-to-end test is excluded under the race detector: the
// link's fidelity probe is timing-sensitive and the race detector slows
// the forwarder several-fold. .ci/run runs the same path through the CLI
// binary instead (built without -race).

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qexchange/qexchange/bench/linkemu"
	"github.com/qexchange/qexchange/bench/results"
)

// needLink skips when the link emulator cannot run here, except in CI.
func needLink(t *testing.T) {
	t.Helper()
	if err := linkemu.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but the link emulator is unavailable: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// TestBenchLossyLink runs tcp and quic over a 2%-loss link with two
// seeds: each seed's probe passes, every record arrives exactly once in
// order, the link-mode metrics are all there, and the summary gives the
// medians over seeds and the per-seed quic/tcp ratios.
func TestBenchLossyLink(t *testing.T) {
	needLink(t)
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	var out, errb bytes.Buffer
	code := Main([]string{"bench", "-transport", "tcp,quic", "-loss", "2%", "-rtt", "10ms", "-rate", "50mbit",
		"-load", "0.05", "-writers", "2", "-readers", "4", "-buffer-timeout", "5ms", "-duration", "1500ms", "-warmup", "300ms",
		"-seeds", "3,5", "-json", path, "-plot", dir}, &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	t.Logf("\n%s", out.String())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep results.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.SchemaVersion != results.SchemaVersion || len(rep.Seeds) != 2 || rep.Seeds[0].Seed != 3 || rep.Seeds[1].Seed != 5 {
		t.Fatalf("schema %d, seeds %d", rep.SchemaVersion, len(rep.Seeds))
	}
	for _, run := range rep.Seeds {
		l := run.Link
		if l == nil || !l.Probe.OK || l.Probe.LossPackets < 20000 || l.TCPCC != "reno" || l.Seed != run.Seed {
			t.Fatalf("seed %d: link %+v", run.Seed, l)
		}
		if len(run.Results) != 3 || run.Results[2].Transport != "ideal" {
			t.Fatalf("seed %d: %d results", run.Seed, len(run.Results))
		}
		for _, r := range run.Results[:2] {
			checkClean(t, &r)
			if r.Channels == nil || r.Channels.Count != 8 || r.Channels.MinMbps <= 0 {
				t.Errorf("seed %d %s: channels %+v", run.Seed, r.Transport, r.Channels)
			}
			if e := r.Emulator; e == nil || e.Data.Forwarded == 0 || e.Data.DroppedLoss == 0 || e.Ack.Packets == 0 {
				t.Errorf("seed %d %s: emulator %+v", run.Seed, r.Transport, e)
			}
			if len(r.LatencyCDF) < 50 || r.LatencyUS.P50 < 5000 {
				t.Errorf("seed %d %s: latency %+v, %d CDF points", run.Seed, r.Transport, r.LatencyUS, len(r.LatencyCDF))
			}
		}
		if id := run.Results[2]; id.LatencyUS.Samples == 0 || len(id.LatencyCDF) == 0 {
			t.Errorf("seed %d: ideal %+v", run.Seed, id)
		}
	}
	// Different seeds drop different packets.
	if a, b := rep.Seeds[0].Results[0].Emulator, rep.Seeds[1].Results[0].Emulator; a != nil && b != nil && *a == *b {
		t.Errorf("seeds 3 and 5 gave identical emulator counters %+v", *a)
	}
	// The results aggregate the seeds; the summary has medians and ratios.
	if len(rep.Results) != 3 || rep.Link == nil || rep.Link.Seed != 3 {
		t.Fatalf("aggregate: %d results, link %+v", len(rep.Results), rep.Link)
	}
	for _, r := range rep.Results[:2] {
		checkClean(t, &r)
	}
	s := rep.Summary
	if s == nil || s.Runs != 2 || len(s.Transports) != 3 || len(s.Ratios) != 3 {
		t.Fatalf("summary %+v", s)
	}
	for _, ts := range s.Transports {
		if ts.P99US.N != 2 || ts.P99US.Min > ts.P99US.Max || ts.Mbps.Median <= 0 {
			t.Errorf("summary %s: %+v", ts.Transport, ts)
		}
	}
	for _, q := range s.Ratios {
		if len(q.Per) != 2 || q.Median <= 0 {
			t.Errorf("ratio %+v", q)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cdf.png")); err != nil {
		t.Error(err)
	}
	for _, w := range []string{"link probe:", "p99.9", "stall", "ideal", "over 2 seeds (3,5)", "p99 ms by seed", "quic/tcp per seed"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}
}
