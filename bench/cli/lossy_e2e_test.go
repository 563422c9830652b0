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

// TestBenchLossyLink runs tcp and quic over a 2%-loss link: probe passes,
// every record arrives exactly once in order, and the link-mode metrics
// are all there.
func TestBenchLossyLink(t *testing.T) {
	needLink(t)
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "out.json")
	var out, errb bytes.Buffer
	code := Main([]string{"bench", "-transport", "tcp,quic", "-loss", "2%", "-rtt", "10ms", "-rate", "50mbit",
		"-load", "0.05", "-writers", "2", "-readers", "4", "-buffer-timeout", "5ms", "-duration", "3s", "-warmup", "500ms",
		"-json", path, "-plot", dir}, &out, &errb)
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
	if rep.Link == nil || !rep.Link.Probe.OK || rep.Link.Probe.LossPackets < 20000 || rep.Link.TCPCC != "reno" {
		t.Fatalf("link %+v", rep.Link)
	}
	if len(rep.Results) != 3 || rep.Results[2].Transport != "ideal" {
		t.Fatalf("%d results", len(rep.Results))
	}
	for _, r := range rep.Results[:2] {
		checkClean(t, &r)
		if r.Channels == nil || r.Channels.Count != 8 || r.Channels.MinMbps <= 0 {
			t.Errorf("%s: channels %+v", r.Transport, r.Channels)
		}
		if e := r.Emulator; e == nil || e.Data.Forwarded == 0 || e.Data.DroppedLoss == 0 || e.Ack.Packets == 0 {
			t.Errorf("%s: emulator %+v", r.Transport, e)
		}
		if len(r.LatencyCDF) < 50 || r.LatencyUS.P50 < 5000 {
			t.Errorf("%s: latency %+v, %d CDF points", r.Transport, r.LatencyUS, len(r.LatencyCDF))
		}
	}
	if id := rep.Results[2]; id.LatencyUS.Samples == 0 || len(id.LatencyCDF) == 0 {
		t.Errorf("ideal %+v", id)
	}
	if _, err := os.Stat(filepath.Join(dir, "cdf.png")); err != nil {
		t.Error(err)
	}
	for _, w := range []string{"link probe:", "p99.9", "stall", "ideal"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}
}
