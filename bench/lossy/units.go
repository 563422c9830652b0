package lossy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseLoss parses a loss probability: "1%", "0.5%" or a fraction such as
// "0.01". It must be in [0, 1).
func ParseLoss(s string) (float64, error) {
	v := strings.TrimSpace(s)
	pct := strings.HasSuffix(v, "%")
	num := strings.TrimSuffix(v, "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || num == "" || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("bad loss %q (want e.g. 1%%, 0.5%% or 0.01)", s)
	}
	if pct {
		f /= 100
	}
	if f < 0 || f >= 1 {
		return 0, fmt.Errorf("loss %q out of range (want at least 0 and below 100%%)", s)
	}
	return f, nil
}

// FormatLoss formats a loss probability as a percentage ("1%", "0.5%",
// "0").
func FormatLoss(f float64) string {
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f*100, 'g', 4, 64) + "%"
}

var rateUnits = []struct {
	suffix string
	mult   float64
}{
	{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1},
}

// ParseRate parses a link rate in bits per second, tc style: "100mbit",
// "1gbit", "500kbit", "2500bit" or a plain number of bits/s. Byte units
// (tc's "kbps" means kilobytes/s) are refused as too easy to misread.
func ParseRate(s string) (int64, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	if strings.HasSuffix(v, "bps") || strings.HasSuffix(v, "b/s") {
		return 0, fmt.Errorf("bad rate %q: use bit units (e.g. 100mbit, 1gbit, 500kbit)", s)
	}
	mult := 1.0
	for _, u := range rateUnits {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || v == "" || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("bad rate %q (want e.g. 100mbit, 1gbit, 500kbit)", s)
	}
	r := f * mult
	if r < 8000 || r > 100e9 {
		return 0, fmt.Errorf("rate %q out of range (want 8kbit to 100gbit)", s)
	}
	return int64(math.Round(r)), nil
}

// FormatRate formats bits/s with the largest exact tc unit ("100mbit").
func FormatRate(r int64) string {
	for _, u := range rateUnits {
		if m := int64(u.mult); r >= m && r%m == 0 {
			return strconv.FormatInt(r/m, 10) + u.suffix
		}
	}
	return strconv.FormatInt(r, 10) + "bit"
}
