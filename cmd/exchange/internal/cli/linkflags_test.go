package cli

import (
	"math"
	"testing"
)

func TestLinkFlagErrorsExit2WithOneLine(t *testing.T) {
	checkUsageErrors(t, []usageCase{
		{[]string{"bench", "-loss", "150%"}, "out of range"},
		{[]string{"bench", "-loss", "lots"}, "bad loss"},
		{[]string{"bench", "-rate", "100mbps"}, "use bit units"},
		{[]string{"bench", "-rate", "fast"}, "bad rate"},
		{[]string{"bench", "-sweep", "jitter=1ms"}, "unknown parameter"},
		{[]string{"bench", "-sweep", "loss=1%,x"}, "bad loss"},
		{[]string{"bench", "-sweep", "loss=1%", "-loss", "2%"}, "give it once"},
		{[]string{"bench", "-loss", "1%", "-load", "0.5"}, "add -rate"},
		{[]string{"bench", "-loss", "1%", "-rate", "10mbit", "-load", "1.5"}, "-load must be"},
		{[]string{"bench", "-rate", "10mbit", "-load", "0.5", "-record-rate", "10"}, "give one"},
		{[]string{"bench", "-load", "0.5"}, "-load needs the emulated link"},
		{[]string{"bench", "-loss", "1%", "-tcp-cc", "vegas"}, "unknown congestion control"},
		{[]string{"bench", "-loss", "1%", "-burst", "0.5"}, "-burst must be at least 1"},
		{[]string{"bench", "-loss", "1%", "-record-size", "16"}, "at least 32 bytes"},
		{[]string{"bench", "-loss", "1%", "-sample-every", "16"}, "-sample-every must be 1"},
		{[]string{"bench", "-loss", "1%", "-transport", "mem"}, "no sockets"},
		{[]string{"bench", "-loss", "1%", "-records", "100"}, "-records does not combine"},
		{[]string{"bench", "-loss", "1%", "-warmup", "10s", "-duration", "5s"}, "-warmup must be"},
		{[]string{"bench", "-rtt", "-1ms"}, "-rtt must be"},
		{[]string{"bench", "-queue", "-1", "-loss", "1%"}, "-queue must be"},
		{[]string{"bench", "-rate", "100"}, "out of range"},
	})
}

func TestLinkFlagsParse(t *testing.T) {
	o := mustParse(t, "bench", "-transport", "tcp,quic", "-loss", "1%", "-rtt", "20ms", "-rate", "100mbit", "-load", "0.5", "-seed", "7")
	l := o.link
	if !l.on || l.loss.f != 0.01 || l.rate.bits != 100e6 || l.tcpCC != "reno" || l.seed != 7 || o.sampleEvery != 1 {
		t.Fatalf("%+v sample %d", l, o.sampleEvery)
	}
	p := l.params()
	if p.Loss != 0.01 || p.RTT.Milliseconds() != 20 || p.Rate != 100e6 || p.Seed != 7 || p.Burst != 1 {
		t.Errorf("params %+v", p)
	}
	c := o.resultsConfig()
	if c.Loss != "1%" || c.LinkRate != "100mbit" || c.TCPCC != "reno" || c.Load != 0.5 || c.RTT != "20ms" {
		t.Errorf("config %+v", c)
	}
	o = mustParse(t, "bench", "-sweep", "loss=0,1%", "-rate", "1gbit", "-tcp-cc", "bbr")
	if !o.link.on || o.link.sweep.sw.Param != "loss" || o.link.tcpCC != "bbr" {
		t.Errorf("sweep %+v", o.link)
	}
	// Loopback: no link, no default congestion control.
	o = mustParse(t, "bench")
	if o.link.on || o.link.tcpCC != "" {
		t.Errorf("loopback %+v", o.link)
	}
	// 0.5 x 100 Mbit/s of 68-byte stream records over 4 writers.
	if got, want := recordRateFor(0.5, 100e6, 64, 4), 0.5*100e6/8/68/4; math.Abs(got-want) > 1e-9 {
		t.Errorf("recordRateFor = %v, want %v", got, want)
	}
}
