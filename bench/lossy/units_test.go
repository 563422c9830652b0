package lossy

import (
	"strings"
	"testing"
	"time"
)

func TestParseLoss(t *testing.T) {
	for in, want := range map[string]float64{"1%": 0.01, "0.5%": 0.005, "0.01": 0.01, "0": 0, " 2% ": 0.02, "0%": 0} {
		got, err := ParseLoss(in)
		if err != nil || got != want {
			t.Errorf("ParseLoss(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "%", "abc", "-1%", "100%", "1", "1.5", "NaN", "1%%"} {
		if _, err := ParseLoss(in); err == nil {
			t.Errorf("ParseLoss(%q): no error", in)
		}
	}
	if FormatLoss(0.005) != "0.5%" || FormatLoss(0) != "0" || FormatLoss(0.02) != "2%" {
		t.Errorf("FormatLoss: %s %s %s", FormatLoss(0.005), FormatLoss(0), FormatLoss(0.02))
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{"100mbit": 100e6, "1gbit": 1e9, "500kbit": 500e3, "1.5Mbit": 1.5e6, "64000": 64000, "2500000bit": 2.5e6} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fast", "100mbps", "10MB/s", "-5mbit", "0", "1kbit", "1000gbit", "mbit"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q): no error", in)
		}
	}
	for r, want := range map[int64]string{100e6: "100mbit", 1e9: "1gbit", 500e3: "500kbit", 1500: "1500bit", 1.5e6: "1500kbit"} {
		if got := FormatRate(r); got != want {
			t.Errorf("FormatRate(%d) = %s, want %s", r, got, want)
		}
	}
}

func TestParseSweep(t *testing.T) {
	sw, err := ParseSweep("loss=0,0.5%,1%,2%,5%")
	if err != nil || sw.Param != "loss" || len(sw.Values) != 5 || sw.X[1] != 0.005 || sw.X[4] != 0.05 {
		t.Fatalf("%+v %v", sw, err)
	}
	p := sw.Apply(Params{Loss: 0.3, RTT: time.Second}, 3)
	if p.Loss != 0.02 || p.RTT != time.Second {
		t.Errorf("Apply: %+v", p)
	}
	if sw.Label(1) != "loss-0.5%" || sw.PlotX(2) != 1 {
		t.Errorf("label %s x %v", sw.Label(1), sw.PlotX(2))
	}
	sw, err = ParseSweep("rtt=10ms, 50ms")
	if err != nil || sw.X[1] != 50 || sw.Apply(Params{}, 0).RTT != 10*time.Millisecond {
		t.Fatalf("rtt: %+v %v", sw, err)
	}
	sw, err = ParseSweep("rate=10mbit,1gbit")
	if err != nil || sw.X[1] != 1000 || sw.Apply(Params{}, 0).Rate != 10e6 {
		t.Fatalf("rate: %+v %v", sw, err)
	}
	if sw, err := ParseSweep(""); sw != nil || err != nil {
		t.Errorf("empty: %v %v", sw, err)
	}
	for in, want := range map[string]string{
		"loss":         "want param=",
		"jitter=1ms":   "unknown parameter",
		"loss=1%,x":    "bad loss",
		"loss=":        "no values",
		"rtt=-1ms":     "bad rtt",
		"rate=100mbps": "bit units",
		"loss=1%,200%": "out of range",
	} {
		_, err := ParseSweep(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSweep(%q) = %v, want error with %q", in, err, want)
		}
	}
}

func TestProbePackets(t *testing.T) {
	for _, tc := range []struct {
		p    Params
		want int
	}{{Params{}, 0}, {Params{Loss: 0.01}, 20000}, {Params{Loss: 0.005}, 40000}, {Params{Loss: 0.05, Burst: 3}, 60000}, {Params{Loss: 0.0001}, 100000}} {
		if got := probePackets(tc.p); got != tc.want {
			t.Errorf("probePackets(%+v) = %d, want %d", tc.p, got, tc.want)
		}
	}
}
