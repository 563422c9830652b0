package results

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteRoundsTable writes the loopback bench over several rounds: per
// transport the median [min-max] of its rates and latency, the summed
// verification counts, then every ratio formed within a round, marked
// "within noise" when its median is no further from 1 than the noise
// floor, and the warnings.
func (r *Report) WriteRoundsTable(w io.Writer) error {
	s := r.Summary
	fmt.Fprintln(w, r.configLine())
	length := r.Config.Duration
	if r.Config.PartitionType == "blocking" && r.Config.Records > 0 {
		length = fmt.Sprintf("%d records", r.Config.Records) // -duration does not cut them short
	}
	fmt.Fprintf(w, "%d round(s) of %s per transport, interleaved, order rotating each round; median [min-max] over rounds\n", s.Runs, length)
	agg := map[string]*Result{}
	for i := range r.Results {
		agg[r.Results[i].Transport] = &r.Results[i]
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transport\truns\trec/ms\tstream MB/s\tp50 µs\tp99 µs\tlost\tdup\treord\tbad\tcpu s\t")
	for _, t := range s.Transports {
		var lost, dup, reord, bad int64
		if a := agg[t.Transport]; a != nil {
			lost, dup, reord, bad = a.Lost, a.Duplicated, a.Reordered, a.ChecksumFailures+a.Invalid
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t\n", t.Transport, t.Runs,
			t.RecordsPerMs.Format("%.1f"), t.StreamMBps.Format("%.1f"), fmtSpreadUS(t.P50US), fmtSpreadUS(t.P99US),
			lost, dup, reord, bad, t.CPUSeconds.Format("%.2f"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i := range r.Results {
		if x := &r.Results[i]; x.Error != "" {
			fmt.Fprintf(w, "%s: ERROR: %s\n", x.Transport, x.Error)
		}
	}
	if len(s.Ratios) > 0 {
		fmt.Fprintln(w, "ratios of stream MB/s, formed within each round:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, q := range s.Ratios {
			if q.WithinNoise {
				fmt.Fprintf(tw, "  %s\t%s\twithin noise\n", q.Name, q.Spread.Format("%.2f"))
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\n", q.Name, q.Spread.Format("%.2f"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, noiseLine(s, r.Calibration))
	for _, warn := range s.Warnings {
		fmt.Fprintln(w, "WARNING: "+warn)
	}
	fmt.Fprintln(w, "stream MB/s counts record bytes + 4-byte length prefixes; lost/dup/reord/bad summed over rounds (bad = checksum failures + invalid records)")
	if r.Config.Verification != "" {
		fmt.Fprintln(w, "verified: "+r.Config.Verification)
	}
	return nil
}

// noiseLine says what the noise floor is made of.
func noiseLine(s *Summary, cal *Calibration) string {
	if s.NoiseFloor == 0 {
		return "noise floor: not measured (needs a raw baseline run twice: -calibrate, or -repeat >= 2 with raw-tcp/raw-quic)"
	}
	var parts []string
	if cal != nil {
		for _, name := range sortedKeys(cal.Diff) {
			parts = append(parts, fmt.Sprintf("%s %.1f%%", name, cal.Diff[name]*100))
		}
		parts = []string{"calibration (2 runs of " + cal.Duration + ") " + strings.Join(parts, ", ")}
	}
	var spread []string
	for _, name := range sortedKeys(s.RawSpread) {
		spread = append(spread, fmt.Sprintf("%s %.1f%%", name, s.RawSpread[name]*100))
	}
	if len(spread) > 0 {
		parts = append(parts, "raw spread over rounds "+strings.Join(spread, ", "))
	}
	return fmt.Sprintf("noise floor %.1f%% (the largest of: %s); a ratio within it of 1 is \"within noise\"", s.NoiseFloor*100, strings.Join(parts, "; "))
}

func fmtSpreadUS(s Spread) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return fmtUS(s.Median)
	}
	return fmtUS(s.Median) + " [" + fmtUS(s.Min) + "-" + fmtUS(s.Max) + "]"
}
