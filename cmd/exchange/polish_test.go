package main

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrape returns the body of http://addr/path, or "" when it does not
// answer 200 within a second.
func scrape(addr, path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}

var bytesIn = regexp.MustCompile(`(?m)^qexchange_num_bytes_in_total\{[^}]*\} ([0-9.e+]+)$`)

// receivedBytes sums the consumer's qexchange_num_bytes_in_total series.
func receivedBytes(metrics string) float64 {
	var sum float64
	for _, m := range bytesIn.FindAllStringSubmatch(metrics, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		sum += v
	}
	return sum
}

// TestInterruptPrintsPartialCounts: serve and consume with -metrics; once
// the consumer's own metrics show data arriving, SIGINT makes it print
// the counts so far and exit 1, and serve, its consumer gone, exits 1
// naming it; then SIGINT stops a second serve (its consumer stopped) with
// its count.
// The scrapes also check /metrics and /debug/pprof/ of both processes.
func TestInterruptPrintsPartialCounts(t *testing.T) {
	serveMetrics, consumeMetrics := freePort(t), freePort(t)
	srv, addr := serve(t, "tcp", "-job", "sigint", "-records", "0", "-duration", "2m", "-record-rate", "20000",
		"-writers", "2", "-readers", "2", "-metrics", serveMetrics)
	c := start(t, "consume", "-transport", "tcp", "-connect", addr, "-job", "sigint", "-writers", "2", "-readers", "2", "-metrics", consumeMetrics)
	deadline := time.Now().Add(20 * time.Second)
	for receivedBytes(scrape(consumeMetrics, "/metrics")) == 0 {
		if time.Now().After(deadline) {
			_, e := c.output()
			t.Fatalf("no data arrived at the consumer within 20s\n%s", e)
		}
		select {
		case <-c.done:
			_, e := c.output()
			t.Fatalf("consume exited early: %v\n%s", c.err, e)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if m := scrape(serveMetrics, "/metrics"); !strings.Contains(m, "qexchange_out_pool_usage{") || !strings.Contains(m, "qexchange_num_bytes_out_total{") {
		t.Errorf("serve's /metrics lacks the partitions' series:\n%.2000s", m)
	}
	for _, a := range []string{serveMetrics, consumeMetrics} {
		if scrape(a, "/debug/pprof/") == "" {
			t.Errorf("/debug/pprof/ on %s does not answer 200", a)
		}
	}
	if err := syscall.Kill(c.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code := c.wait(t, 10*time.Second)
	_, e := c.output()
	m := regexp.MustCompile(`interrupted after [0-9.]+s: received ([0-9]+) records from \S+; so far lost 0, duplicated 0, reordered 0, corrupted 0, invalid 0`).FindStringSubmatch(e)
	if code != 1 || m == nil {
		t.Fatalf("consume after SIGINT: exit %d, stderr %q", code, e)
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Errorf("partial count of 0 records after data arrived: %q", e)
	}
	// The consumer is gone, so serve stops by itself, naming it.
	code = srv.wait(t, 10*time.Second)
	_, e = srv.output()
	if code != 1 || !regexp.MustCompile(`after [0-9.]+s, [1-9][0-9]* records emitted: .*consumer \S+ .* went away`).MatchString(e) {
		t.Fatalf("serve after its consumer stopped: exit %d, stderr %q", code, e)
	}

	// SIGINT stops serve with the count so far; its consumer is stopped
	// (SIGSTOP: alive to its kernel, so serve does not see it go away).
	srv, addr = serve(t, "tcp", "-job", "sigint2", "-records", "0", "-duration", "2m", "-record-rate", "20000", "-writers", "2", "-readers", "2")
	consumeMetrics = freePort(t)
	c = start(t, "consume", "-transport", "tcp", "-connect", addr, "-job", "sigint2", "-writers", "2", "-readers", "2", "-metrics", consumeMetrics)
	deadline = time.Now().Add(20 * time.Second)
	for receivedBytes(scrape(consumeMetrics, "/metrics")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no data arrived at the second consumer within 20s")
		}
		time.Sleep(20 * time.Millisecond) // polling the consumer's metrics
	}
	if err := syscall.Kill(c.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(srv.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code = srv.wait(t, 10*time.Second)
	_, e = srv.output()
	if code != 1 || !regexp.MustCompile(`interrupted after [0-9.]+s .*: emitted [1-9][0-9]* records`).MatchString(e) {
		t.Fatalf("serve after SIGINT: exit %d, stderr %q", code, e)
	}
}

// TestLateConsumer: serve's clock starts with its first consumer, so a
// consumer that comes 2 s late adds neither to serve's time nor to the
// records' latency. (It runs with -verify sampled, which the consumer
// learns from the producer's hello.)
func TestLateConsumer(t *testing.T) {
	const late = 2 * time.Second
	srv, addr := serve(t, "tcp", "-job", "late", "-records", "200000", "-writers", "2", "-readers", "4", "-verify", "sampled")
	time.Sleep(late) // the scenario: nobody consumes for a while
	path := filepath.Join(t.TempDir(), "c.json")
	c := start(t, "consume", "-transport", "tcp", "-connect", addr, "-job", "late", "-writers", "2", "-readers", "4", "-json", path)
	if code := c.wait(t, 30*time.Second); code != 0 {
		_, e := c.output()
		t.Fatalf("consume exit %d\n%s", code, e)
	}
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	so, _ := srv.output()
	m := regexp.MustCompile(`served 200000 records .* in ([0-9.]+)s from the first consumer's connection`).FindStringSubmatch(so)
	if m == nil {
		t.Fatalf("serve output %q", so)
	}
	if took, _ := strconv.ParseFloat(m[1], 64); took >= late.Seconds() {
		t.Errorf("serve reports %vs, counting the %v before the consumer came", took, late)
	}
	rep := readReport(t, path)
	if rep.Config.Verify != "sampled" {
		t.Errorf("consume reports -verify %q, the producer ran sampled", rep.Config.Verify)
	}
	r := rep.Results[0]
	if r.Records != 200000 || r.LatencyUS.Samples == 0 || r.LatencyUS.Max >= float64(late.Microseconds()) {
		t.Errorf("consume: %d records, latency %+v (max must stay below the %v the consumer was late)", r.Records, r.LatencyUS, late)
	}
}

// TestVersionOfBinary: the built binary names its version and, built in
// a git checkout, the revision.
func TestVersionOfBinary(t *testing.T) {
	out, err := exec.Command(binary(t), "-version").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	v := string(out)
	if !strings.HasPrefix(v, "exchange ") || strings.Count(v, "\n") != 1 || !strings.Contains(v, "go1.") {
		t.Fatalf("-version printed %q", v)
	}
	t.Logf("%s", strings.TrimSpace(v))
}
