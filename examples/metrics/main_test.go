package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example's claim: while it runs, a scrape shows the slow pipeline's
// producer backpressured with a full pool, and the fast one not.
func TestScrapeShowsTheSlowProducer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln, 15*time.Second, pw); pw.Close() }()
	lines := bufio.NewScanner(pr)
	var fast, slow string
	for lines.Scan() {
		if _, err := fmt.Sscanf(lines.Text(), "fast partition %s slow partition %s", &fast, &slow); err == nil {
			break
		}
	}
	fast = strings.TrimSuffix(fast, ",")
	go io.Copy(io.Discard, pr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := scrape(t, "http://"+ln.Addr().String()+"/metrics")
		bp := func(p string) float64 {
			return m[fmt.Sprintf("qexchange_back_pressured_time_ms_per_second{partition=%q}", p)]
		}
		usage := m[fmt.Sprintf("qexchange_out_pool_usage{partition=%q}", slow)]
		if bp(slow) > 500 && usage > 0.9 && bp(fast) < bp(slow) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow %s: %.0f ms/s, usage %.2f; fast %s: %.0f ms/s", slow, bp(slow), usage, fast, bp(fast))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				m[line[:i]] = v
			}
		}
	}
	return m
}
