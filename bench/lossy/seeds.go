package lossy

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/qexchange/qexchange/bench/results"
)

// WriteSeedSummary prints one setting's seeds: per transport the median
// [min-max] over seeds of p50, p99, p99.9 (ms) and delivered Mbit/s, then
// each seed's p99 per transport with the quic/tcp ratio, then the median
// [min-max] of the per-seed quic/tcp ratios.
func WriteSeedSummary(w io.Writer, label string, pt *results.SweepPoint) error {
	s := pt.Summary
	seeds := make([]string, len(s.Seeds))
	for i, x := range s.Seeds {
		seeds[i] = fmt.Sprint(x)
	}
	fmt.Fprintf(w, "%sover %d seeds (%s): median [min-max]\n", label, len(s.Seeds), strings.Join(seeds, ","))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transport\tseeds\tp50 ms\tp99 ms\tp99.9 ms\tMbit/s\t")
	for _, t := range s.Transports {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", t.Transport, t.Runs, msSpread(t.P50US), msSpread(t.P99US), msSpread(t.P999US), t.Mbps.Format("%.1f"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Per seed: p99 of every transport, and quic/tcp.
	var names []string
	for _, t := range s.Transports {
		names = append(names, t.Transport)
	}
	var p99Ratio *results.RatioSummary
	for i := range s.Ratios {
		if s.Ratios[i].Name == results.QUICOverTCP+" p99" {
			p99Ratio = &s.Ratios[i]
		}
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "p99 ms by seed\t" + strings.Join(names, "\t") + "\t"
	if p99Ratio != nil {
		head += "quic/tcp\t"
	}
	fmt.Fprintln(tw, head)
	k := 0
	for _, run := range pt.Seeds {
		row := fmt.Sprintf("seed %d\t", run.Seed)
		var tcp, quic float64
		for _, n := range names {
			cell := "-"
			for j := range run.Results {
				r := &run.Results[j]
				if r.Transport == n && r.LatencyUS.Samples > 0 && r.Error == "" {
					cell = ms(r.LatencyUS.P99)
					switch n {
					case results.TCP:
						tcp = r.LatencyUS.P99
					case results.QUIC:
						quic = r.LatencyUS.P99
					}
				}
			}
			row += cell + "\t"
		}
		if p99Ratio != nil {
			// Per holds only the seeds where both were measured.
			if tcp > 0 && quic > 0 && k < len(p99Ratio.Per) {
				row += fmt.Sprintf("%.2f\t", p99Ratio.Per[k])
				k++
			} else {
				row += "-\t"
			}
		}
		fmt.Fprintln(tw, row)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Ratios) > 0 {
		var parts []string
		for _, q := range s.Ratios {
			parts = append(parts, strings.TrimPrefix(q.Name, results.QUICOverTCP+" ")+" "+q.Spread.Format("%.2f"))
		}
		fmt.Fprintf(w, "quic/tcp per seed, median [min-max]: %s\n", strings.Join(parts, ", "))
	}
	return nil
}

func msSpread(s results.Spread) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return ms(s.Median)
	}
	return ms(s.Median) + " [" + ms(s.Min) + "-" + ms(s.Max) + "]"
}
