package exchange_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

// scrape fetches /metrics and returns every sample by its full series
// name, e.g. `qexchange_out_pool_usage{partition="..."}`.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

// A slowed consumer's producer shows backpressure and a full pool; an
// unthrottled one shows neither, in the same scrape.
func TestMetricsShowBackpressure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	env, err := exchange.NewEnvironment(ctx, exchange.Config{SegmentSize: 4096, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	slow, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, MinBuffers: 2, MaxBuffers: 4, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	slowGate, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: slow.ID()}}})
	if err != nil {
		t.Fatal(err)
	}
	fastGate, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: fast.ID()}}})
	if err != nil {
		t.Fatal(err)
	}
	writerCtx, stopWriters := context.WithCancel(ctx)
	done := make(chan error, 3)
	rec := make([]byte, 100)
	go func() { // never read: blocks once its 4 buffers are full
		for {
			if err := slow.EmitTo(writerCtx, 0, rec); err != nil {
				done <- nil
				return
			}
		}
	}()
	go func() {
		for {
			if err := fast.EmitTo(writerCtx, 0, rec); err != nil {
				done <- nil
				return
			}
			time.Sleep(100 * time.Microsecond) // a paced producer, not a synchronisation
		}
	}()
	go func() {
		for {
			if _, err := fastGate.Next(writerCtx); err != nil {
				done <- nil
				return
			}
		}
	}()

	series := func(name, part string) string { return fmt.Sprintf("%s{partition=%q}", name, part) }
	var m map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = scrape(t, srv.URL)
		if m[series("qexchange_back_pressured_time_ms_per_second", slow.ID().String())] > 500 &&
			m[series("qexchange_num_bytes_out_total", fast.ID().String())] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no backpressure seen within 10s: %v", m)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if u := m[series("qexchange_out_pool_usage", slow.ID().String())]; u < 0.99 {
		t.Errorf("slowed producer's pool usage %.2f, want ~1.0", u)
	}
	if bp := m[series("qexchange_back_pressured_time_ms_per_second", fast.ID().String())]; bp > 100 {
		t.Errorf("unthrottled producer backpressured %.0f ms/s, want ~0", bp)
	}
	if u := m[series("qexchange_out_pool_usage", fast.ID().String())]; u > 0.5 {
		t.Errorf("unthrottled producer's pool usage %.2f, want low", u)
	}
	if n := m[`qexchange_num_buffers_in_total{gate="1",locality="local"}`]; n <= 0 {
		t.Errorf("fast gate took %v local buffers, want > 0", n)
	}
	if _, ok := m["qexchange_network_pool_usage"]; !ok {
		t.Error("no network pool usage")
	}

	stopWriters()
	for range 3 {
		<-done
	}
	slowGate.Close()
	fastGate.Close()
	slow.Release()
	fast.Release()
	// Released partitions and closed gates leave the scrape.
	m = scrape(t, srv.URL)
	for k := range m {
		if strings.Contains(k, slow.ID().String()) || strings.Contains(k, `gate="`) {
			t.Errorf("series %s still exported after release", k)
		}
	}
	env.Close()
	transporttest.CheckPools(t, env)
	// Close unregisters: the registry is empty again.
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Fatalf("after Close: %d metric families, %v", len(mfs), err)
	}
}

// Two environments on one registry collide unless each is labelled.
func TestMetricsSecondEnvironmentNeedsItsOwnLabels(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	a, err := exchange.NewEnvironment(ctx, exchange.Config{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	_, err = exchange.NewEnvironment(ctx, exchange.Config{Metrics: reg})
	if !errors.Is(err, exchange.ErrInvalidConfig) {
		t.Fatalf("second environment on the same registry: %v, want ErrInvalidConfig", err)
	}
	a.Close()

	labelled := prometheus.NewRegistry()
	for _, node := range []string{"a", "b"} {
		e, err := exchange.NewEnvironment(ctx, exchange.Config{Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, labelled)})
		if err != nil {
			t.Fatalf("node %s with its own label: %v", node, err)
		}
		defer e.Close()
	}
	mfs, err := labelled.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "qexchange_network_pool_usage" && len(mf.GetMetric()) != 2 {
			t.Fatalf("want one network pool usage per labelled node, got %v", mf)
		}
	}
}
