package lossy

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/qexchange/qexchange/bench/results"
)

// LinkLine describes the link of a run in one line.
func LinkLine(l *results.Link) string {
	s := fmt.Sprintf("link: loss %s", FormatLoss(l.Loss))
	if l.BurstLen > 1 {
		s += fmt.Sprintf(" (mean burst %.1f)", l.BurstLen)
	}
	s += fmt.Sprintf(", RTT %s", l.RTT)
	if l.RateBits > 0 {
		s += ", rate " + FormatRate(l.RateBits)
	} else {
		s += ", rate unlimited"
	}
	s += fmt.Sprintf(", queue %d packets, seed %d, tcp cc %s", l.Queue, l.Seed, l.TCPCC)
	if l.Load > 0 {
		s += fmt.Sprintf(", load %.2f = %.0f rec/s per writer", l.Load, l.RecordRate)
	}
	return s + fmt.Sprintf("; warm-up %.1fs not measured", l.WarmupS)
}

func ms(us float64) string {
	switch {
	case us >= 100e3:
		return fmt.Sprintf("%.0f", us/1e3)
	case us >= 10e3:
		return fmt.Sprintf("%.1f", us/1e3)
	}
	return fmt.Sprintf("%.2f", us/1e3)
}

// WriteTable prints a link-mode report: the link, the probe, and one row
// per transport (the ideal limit last) with latency percentiles in ms,
// total and per-channel throughput, stall time and the emulator's drops
// in the data direction.
func WriteTable(w io.Writer, rep *results.Report) error {
	c := rep.Config
	fmt.Fprintf(w, "%d writers x %d readers = %d channels, %d-byte records, buffer timeout %s, segment %d B\n",
		c.Writers, c.Readers, c.Channels, c.RecordSize, c.BufferTimeout, c.SegmentSize)
	if rep.Link != nil {
		fmt.Fprintln(w, LinkLine(rep.Link))
		fmt.Fprintln(w, ProbeLine(rep.Link.Probe))
	}
	writeRows(w, rep.Results, "")
	fmt.Fprintln(w, "latency: one-way per record (ms); Mbit/s: record payload; ch min/med: per-channel Mbit/s; stall: per-channel time with an overdue record and no arrival (sum over channels in s, max channel in ms, % of channel-time); pkts/loss/qdrop: emulator, producer->consumer")
	return nil
}

func writeRows(w io.Writer, rs []results.Result, prefix string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "transport\trecords\tMbit/s\tp50\tp99\tp99.9\tmax\tch min\tch med\tstall s\tstall max\tstall %\tpkts\tloss\tqdrop\tlost\tdup\treord\tbad\tcpu s\t"
	if prefix != "" {
		head = prefix + "\t" + head
	}
	fmt.Fprintln(tw, head)
	for i := range rs {
		x := &rs[i]
		row := ""
		if prefix != "" {
			row = "\t"
		}
		lat := [4]string{"-", "-", "-", "-"}
		if x.LatencyUS.Samples > 0 {
			for k, v := range []float64{x.LatencyUS.P50, x.LatencyUS.P99, x.LatencyUS.P999, x.LatencyUS.Max} {
				lat[k] = ms(v)
			}
		}
		chMin, chMed, st, stMax, stPct := "-", "-", "-", "-", "-"
		if ch := x.Channels; ch != nil {
			chMin, chMed = fmt.Sprintf("%.3f", ch.MinMbps), fmt.Sprintf("%.3f", ch.MedianMbps)
			if x.Transport != Ideal {
				st = fmt.Sprintf("%.2f", ch.StallTotalMS/1e3)
				stMax = fmt.Sprintf("%.0f", ch.StallMaxMS)
				stPct = fmt.Sprintf("%.2f", ch.StallFraction*100)
			}
		}
		pk, lo, qd := "-", "-", "-"
		if e := x.Emulator; e != nil {
			pk, lo, qd = fmt.Sprint(e.Data.Packets), fmt.Sprint(e.Data.DroppedLoss), fmt.Sprint(e.Data.DroppedQueue)
		}
		ver := fmt.Sprintf("%d\t%d\t%d\t%d\t%.2f", x.Lost, x.Duplicated, x.Reordered, x.ChecksumFailures+x.Invalid, x.CPUSeconds)
		if x.Transport == Ideal {
			ver = "-\t-\t-\t-\t-"
		}
		fmt.Fprintf(tw, "%s%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row,
			x.Transport, x.Records, x.MBytesPerSec*8, lat[0], lat[1], lat[2], lat[3],
			chMin, chMed, st, stMax, stPct, pk, lo, qd, ver)
	}
	tw.Flush()
	for i := range rs {
		if rs[i].Error != "" {
			fmt.Fprintf(w, "%s: ERROR: %s\n", rs[i].Transport, rs[i].Error)
		}
	}
}

// summaryOf is transport's summary over seeds, nil without one.
func summaryOf(s *results.Summary, transport string) *results.TransportSummary {
	if s == nil {
		return nil
	}
	for i := range s.Transports {
		if s.Transports[i].Transport == transport {
			return &s.Transports[i]
		}
	}
	return nil
}

// WriteSweepSummary prints one row per sweep point and transport: p50,
// p99, p99.9 latency (ms), throughput (Mbit/s) and stall share, the
// transports side by side with the ideal limit. With several seeds the
// figures are medians over them, p99 and Mbit/s with [min-max].
func WriteSweepSummary(w io.Writer, sw *results.Sweep) error {
	if len(sw.Sweep) == 0 {
		return nil
	}
	fmt.Fprintf(w, "sweep over %s:\n", sw.Sweep[0].Param)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, sw.Sweep[0].Param+"\ttransport\tp50 ms\tp99 ms\tp99.9 ms\tMbit/s\tch min\tstall %\tprobe loss\tclean\t")
	for _, pt := range sw.Sweep {
		probe := "-"
		if pt.Link != nil {
			probe = pct(pt.Link.Probe.LossAtoB)
		}
		for i := range pt.Results {
			x := &pt.Results[i]
			stPct, chMin := "-", "-"
			if ch := x.Channels; ch != nil {
				chMin = fmt.Sprintf("%.3f", ch.MinMbps)
				if x.Transport != Ideal {
					stPct = fmt.Sprintf("%.2f", ch.StallFraction*100)
				}
			}
			clean := "yes"
			if !x.Clean() {
				clean = "NO"
			}
			if x.Transport == Ideal {
				clean = "-"
			}
			p99, mbps := ms(x.LatencyUS.P99), fmt.Sprintf("%.1f", x.MBytesPerSec*8)
			if ts := summaryOf(pt.Summary, x.Transport); ts != nil {
				// Several seeds: the median [min-max] over them.
				p99, mbps = msSpread(ts.P99US), ts.Mbps.Format("%.1f")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", pt.Value, x.Transport,
				ms(x.LatencyUS.P50), p99, ms(x.LatencyUS.P999), mbps, chMin, stPct, probe, clean)
		}
	}
	return tw.Flush()
}
