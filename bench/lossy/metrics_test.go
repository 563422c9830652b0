package lossy

import (
	"math"
	"testing"
	"time"

	"github.com/qexchange/qexchange/bench/hist"
	"github.com/qexchange/qexchange/bench/workload"
)

func TestSummariseChannels(t *testing.T) {
	if SummariseChannels(nil) != nil {
		t.Fatal("empty: want nil")
	}
	sec := int64(time.Second)
	chs := []workload.ChannelStats{
		{Bytes: 1e6, From: sec, LastArrival: 3 * sec, StallNs: 10e6},   // 4 Mbit/s, 10 ms
		{Bytes: 2e6, From: sec, LastArrival: 3 * sec, StallNs: 0},      // 8 Mbit/s
		{Bytes: 500e3, From: sec, LastArrival: 2 * sec, StallNs: 50e6}, // 4 Mbit/s, 50 ms
		{Bytes: 0, From: sec, LastArrival: 0},                          // nothing measured
	}
	s := SummariseChannels(chs)
	if s.Count != 4 || s.MinMbps != 0 || s.MedianMbps != 4 {
		t.Errorf("throughput %+v", s)
	}
	if s.StallTotalMS != 60 || s.StallMaxMS != 50 || s.StallMedianMS != 5 {
		t.Errorf("stall %+v", s)
	}
	if want := 0.060 / 5; math.Abs(s.StallFraction-want) > 1e-12 {
		t.Errorf("stall fraction %v, want %v", s.StallFraction, want)
	}
	if math.Abs(s.StallP99MS-(10+0.97*40)) > 1e-9 {
		t.Errorf("stall p99 %v", s.StallP99MS)
	}
}

func TestCDF(t *testing.T) {
	if CDF(hist.New()) != nil {
		t.Fatal("empty: want nil")
	}
	h := hist.New()
	for i := 1; i <= 10000; i++ {
		h.Record(int64(i) * 1000) // 1 µs .. 10 ms
	}
	c := CDF(h)
	if len(c) < 95 || len(c) > 110 {
		t.Fatalf("%d points", len(c))
	}
	for i := 1; i < len(c); i++ {
		if c[i].LatencyUS <= c[i-1].LatencyUS || c[i].Fraction <= c[i-1].Fraction {
			t.Fatalf("not increasing at %d: %+v %+v", i, c[i-1], c[i])
		}
	}
	if last := c[len(c)-1]; last.Fraction != 1 || last.LatencyUS != 10000 {
		t.Errorf("last %+v", last)
	}
	if p := c[49]; p.Fraction != 0.5 || math.Abs(p.LatencyUS-5000) > 5000*0.01 {
		t.Errorf("median %+v", p)
	}
	// A constant latency collapses into one point at fraction 1.
	h = hist.New()
	for range 100 {
		h.Record(5e6)
	}
	if c := CDF(h); len(c) != 1 || c[0].Fraction != 1 || c[0].LatencyUS != 5000 {
		t.Errorf("constant: %+v", c)
	}
}

func TestIdealResult(t *testing.T) {
	p := Params{Loss: 0.01, RTT: 20 * time.Millisecond, Rate: 100e6, Seed: 1}
	r := IdealResult(p, Workload{Channels: 8, RecordSize: 64, RecordsPerSecond: 80000, BufferTimeout: 10 * time.Millisecond, SegmentSize: 32768, Duration: 2 * time.Second})
	if r.Transport != Ideal || r.LatencyUS.Samples == 0 || len(r.LatencyCDF) == 0 {
		t.Fatalf("%+v", r)
	}
	// At least the one-way delay; p99.9 pays a retransmission RTT.
	if r.LatencyUS.P50 < 10e3 || r.LatencyUS.P50 > 21e3 || r.LatencyUS.Max < 30e3 {
		t.Errorf("latency %+v", r.LatencyUS)
	}
	if mbps := r.MBytesPerSec * 8; math.Abs(mbps-80000*64*8/1e6) > 1 {
		t.Errorf("throughput %v Mbit/s", mbps)
	}
}
