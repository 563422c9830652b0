package lossy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sweep parameters.
const (
	SweepLoss = "loss"
	SweepRTT  = "rtt"
	SweepRate = "rate"
	// SweepLoad sweeps the offered load (a fraction of the link rate in
	// (0, 1]), not a link parameter: the capacity curve.
	SweepLoad = "load"
)

// Sweep is a parsed -sweep spec: one link parameter and its values, run
// one after the other (each with its own link, probe and transports).
type Sweep struct {
	Param  string
	Values []string  // as given
	X      []float64 // loss fraction, RTT in ms, or rate in Mbit/s
}

// ParseSweep parses "loss=0,0.5%,1%", "rtt=10ms,50ms",
// "rate=10mbit,100mbit" or "load=0.05,0.1,0.5". The empty string is no
// sweep (nil).
func ParseSweep(s string) (*Sweep, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	param, list, ok := strings.Cut(s, "=")
	param = strings.ToLower(strings.TrimSpace(param))
	if !ok {
		return nil, fmt.Errorf("bad sweep %q (want param=v1,v2,... e.g. loss=0,0.5%%,1%%,2%%,5%%)", s)
	}
	sw := &Sweep{Param: param}
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		var x float64
		switch param {
		case SweepLoss:
			f, err := ParseLoss(v)
			if err != nil {
				return nil, fmt.Errorf("sweep: %w", err)
			}
			x = f
		case SweepRTT:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("sweep: bad rtt %q (want a positive duration like 20ms)", v)
			}
			x = float64(d) / 1e6
		case SweepRate:
			r, err := ParseRate(v)
			if err != nil {
				return nil, fmt.Errorf("sweep: %w", err)
			}
			x = float64(r) / 1e6
		case SweepLoad:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("sweep: bad load %q (want a fraction of the link rate like 0.05)", v)
			}
			if !(f > 0 && f <= 1) {
				return nil, fmt.Errorf("sweep: load %v is outside (0, 1] (a fraction of the link rate)", f)
			}
			x = f
		default:
			return nil, fmt.Errorf("sweep: unknown parameter %q (want loss, rtt, rate or load)", param)
		}
		sw.Values = append(sw.Values, v)
		sw.X = append(sw.X, x)
	}
	if len(sw.Values) == 0 {
		return nil, fmt.Errorf("sweep %q has no values", s)
	}
	return sw, nil
}

// Apply returns p with the sweep's i-th value set.
func (sw *Sweep) Apply(p Params, i int) Params {
	switch sw.Param {
	case SweepLoss:
		p.Loss, _ = ParseLoss(sw.Values[i])
	case SweepRTT:
		p.RTT, _ = time.ParseDuration(sw.Values[i])
	case SweepRate:
		p.Rate, _ = ParseRate(sw.Values[i])
	}
	return p
}

// LoadAt is the offered load of point i of a load sweep (ok false for
// other sweeps).
func (sw *Sweep) LoadAt(i int) (float64, bool) {
	if sw == nil || sw.Param != SweepLoad {
		return 0, false
	}
	return sw.X[i], true
}

// Label is the sweep point's name in file names and titles ("loss-1%").
func (sw *Sweep) Label(i int) string { return sw.Param + "-" + sw.Values[i] }

// XLabel is the axis label of the swept parameter.
func (sw *Sweep) XLabel() string {
	switch sw.Param {
	case SweepLoss:
		return "packet loss (%)"
	case SweepRTT:
		return "RTT (ms)"
	case SweepLoad:
		return "offered load (fraction of the link rate)"
	}
	return "link rate (Mbit/s)"
}

// PlotX is the x value on charts (loss in percent).
func (sw *Sweep) PlotX(i int) float64 {
	if sw.Param == SweepLoss {
		return sw.X[i] * 100
	}
	return sw.X[i]
}
