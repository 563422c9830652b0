package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// freeTCPAddr is a loopback address that was free a moment ago.
func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// httpGet returns the status and body of url (bounded).
func httpGet(ctx context.Context, url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestBenchMetricsDuringRun scrapes -metrics while bench runs over tcp:
// both nodes' qexchange_ series are there, told apart by the node label,
// and /debug/pprof/ answers.
func TestBenchMetricsDuringRun(t *testing.T) {
	addr := freeTCPAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"bench", "-transport", "tcp", "-duration", "3s", "-writers", "1", "-readers", "2",
			"-record-rate", "20000", "-repeat", "1", "-calibrate", "0", "-metrics", addr}, &out, &errb)
	}()
	var metrics string
	pprofStatus := 0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
poll:
	for {
		select {
		case code := <-done:
			t.Fatalf("bench ended (exit %d) before a scrape found both nodes; last scrape:\n%s\nstderr:\n%s", code, metrics, errb.String())
		case <-deadline:
			t.Fatalf("no complete scrape in 20s; last:\n%s", metrics)
		case <-tick.C:
			code, body, err := httpGet(ctx, "http://"+addr+"/metrics")
			if err != nil || code != http.StatusOK {
				continue
			}
			metrics = body
			if strings.Contains(body, `qexchange_out_pool_usage{node="producer"`) && strings.Contains(body, `qexchange_in_pool_usage{gate=`) &&
				strings.Contains(body, `node="consumer"`) {
				pprofStatus, _, _ = httpGet(ctx, "http://"+addr+"/debug/pprof/")
				break poll
			}
		}
	}
	if pprofStatus != http.StatusOK {
		t.Errorf("/debug/pprof/ answered %d", pprofStatus)
	}
	if code := <-done; code != ExitOK {
		t.Fatalf("bench exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "metrics on http://"+addr+"/metrics") {
		t.Errorf("stderr does not give the metrics address: %q", errb.String())
	}
	// The server is gone with the command.
	if _, _, err := httpGet(ctx, "http://"+addr+"/metrics"); err == nil {
		t.Error("metrics server still answers after the command returned")
	}
}

// TestNoColourOffTerminal: -v logs through zerolog's console writer
// without ANSI escapes when stderr is not a terminal.
func TestNoColourOffTerminal(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"bench", "-transport", "mem", "-duration", "200ms", "-writers", "1", "-readers", "1", "-repeat", "1", "-v"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	log := errb.String()
	if !strings.Contains(log, "cmd=bench") {
		t.Fatalf("no log lines on stderr: %q", log)
	}
	if strings.Contains(log, "\x1b[") {
		t.Fatalf("ANSI escape codes in a redirected log: %q", log)
	}
}

// TestProgressOffTerminal: on a non-terminal, a run longer than the
// report interval writes one progress line per interval (no carriage
// returns, no escapes); a shorter run writes none.
func TestProgressOffTerminal(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"bench", "-transport", "mem", "-duration", "1s", "-writers", "1", "-readers", "1", "-repeat", "1"}
	if code := MainWithHooks(args, &out, &errb, Hooks{ProgressEvery: 150 * time.Millisecond}); code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	var progress []string
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.HasPrefix(l, "exchange bench: [mem] ") {
			progress = append(progress, l)
		}
	}
	if len(progress) < 3 || len(progress) > 8 {
		t.Fatalf("%d progress lines in a 1s run at 150ms, want about 6:\n%s", len(progress), errb.String())
	}
	if !strings.Contains(progress[0], "received") || !strings.Contains(progress[0], "rec/ms") {
		t.Errorf("progress line %q", progress[0])
	}
	if strings.ContainsAny(errb.String(), "\r\x1b") {
		t.Errorf("terminal control characters off a terminal: %q", errb.String())
	}
	errb.Reset()
	args[4] = "300ms"
	if code := Main(args, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	if strings.Contains(errb.String(), "exchange bench: [") {
		t.Errorf("a 300ms run reported progress at the default 10s interval: %q", errb.String())
	}
}

// TestBenchVerifySampled: -verify sampled still counts every record
// exactly, at a compact and a full record size, and the JSON says which
// mode ran.
func TestBenchVerifySampled(t *testing.T) {
	for _, size := range []string{"8", "1024"} {
		rep, table := runBenchCmd(t, "-transport", "mem", "-duration", "1m", "-records", "100003", "-record-size", size,
			"-readers", "3", "-repeat", "1", "-verify", "sampled")
		r := rep.Results[0]
		checkClean(t, &r)
		if r.Records != 100003 || r.Sent != 100003 {
			t.Errorf("size %s: records %d sent %d, want 100003", size, r.Records, r.Sent)
		}
		if rep.Config.Verify != "sampled" || !strings.Contains(table, "verified: sampled:") {
			t.Errorf("size %s: verify %q, table:\n%s", size, rep.Config.Verify, table)
		}
	}
}
