package results

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Blocking is a BLOCKING partition run (docs/architecture.md, "The
// model"): every producer writes all of its records to disk and
// finishes, then the consumers read them. Result.Seconds spans both
// phases, so Result.RecordsPerMs is the end-to-end rate.
type Blocking struct {
	// ProduceSeconds: from the start until every partition finished
	// (its file complete); ConsumeSeconds: from then until the last
	// consumer read its last record (gates are created after Finish, as
	// a batch scheduler deploys consumers after their producers).
	ProduceSeconds      float64 `json:"produce_seconds"`
	ConsumeSeconds      float64 `json:"consume_seconds"`
	ProduceRecordsPerMs float64 `json:"produce_records_per_ms"`
	ConsumeRecordsPerMs float64 `json:"consume_records_per_ms"`
	// SpilledBytes is what went to disk: the sum of the partitions'
	// files (buffer headers, events and the index-free payload).
	SpilledBytes int64 `json:"spilled_bytes"`
	// DiskRatio is the stream bytes (records plus their 4-byte length
	// prefixes, uncompressed) over SpilledBytes: the compression ratio
	// on disk, a little under 1 without compression.
	DiskRatio float64 `json:"disk_ratio"`
}

// Compression is the codec's own counts over a run's partitions
// (exchange.CompressionStats): for BLOCKING partitions each data buffer
// once, when spilled; for pipelined ones each buffer sent over the
// network.
type Compression struct {
	Codec      string  `json:"codec"`
	Buffers    int64   `json:"buffers"`
	Compressed int64   `json:"compressed"` // of them, stored or sent compressed (they shrank)
	BytesIn    int64   `json:"bytes_in"`
	BytesOut   int64   `json:"bytes_out"`
	Ratio      float64 `json:"ratio"` // BytesIn / BytesOut
}

// Add adds o's counts to c and recomputes the ratio.
func (c *Compression) Add(o Compression) {
	c.Buffers += o.Buffers
	c.Compressed += o.Compressed
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
	if c.BytesOut > 0 {
		c.Ratio = float64(c.BytesIn) / float64(c.BytesOut)
	}
}

// PeakRSS is the process's peak resident set size during a run (Linux
// VmHWM, reset before each run when /proc/self/clear_refs allows it),
// beside the network memory the run's environments were given. In the
// bench one process holds both the producer and the consumer node.
type PeakRSS struct {
	Bytes int64 `json:"bytes"`
	// NetworkMemory is the sum over the run's environments (0 for raw
	// baselines, which have none).
	NetworkMemory int64 `json:"network_memory"`
	// Reset: the peak was reset before the run; otherwise it is the
	// process's peak so far, which earlier runs may have set.
	Reset bool `json:"reset"`
}

// foldExtras fills an aggregated result's Blocking, Compression and
// PeakRSS from its runs without errors: seconds and bytes summed, rates
// and ratios the medians, the peak the largest.
func foldExtras(a *Result, runs []*Result) {
	var prod, cons, disk []float64
	for _, r := range runs {
		if b := r.Blocking; b != nil {
			if a.Blocking == nil {
				a.Blocking = &Blocking{}
			}
			a.Blocking.ProduceSeconds += b.ProduceSeconds
			a.Blocking.ConsumeSeconds += b.ConsumeSeconds
			a.Blocking.SpilledBytes += b.SpilledBytes
			prod = append(prod, b.ProduceRecordsPerMs)
			cons = append(cons, b.ConsumeRecordsPerMs)
			disk = append(disk, b.DiskRatio)
		}
		if c := r.Compression; c != nil {
			if a.Compression == nil {
				a.Compression = &Compression{Codec: c.Codec}
			}
			a.Compression.Add(*c)
		}
		if p := r.PeakRSS; p != nil {
			if a.PeakRSS == nil {
				a.PeakRSS = &PeakRSS{NetworkMemory: p.NetworkMemory, Reset: true}
			}
			a.PeakRSS.Bytes = max(a.PeakRSS.Bytes, p.Bytes)
			a.PeakRSS.Reset = a.PeakRSS.Reset && p.Reset
		}
	}
	if b := a.Blocking; b != nil {
		b.ProduceRecordsPerMs = SpreadOf(prod).Median
		b.ConsumeRecordsPerMs = SpreadOf(cons).Median
		b.DiskRatio = SpreadOf(disk).Median
	}
}

// runsByTransport lists every run of each transport: all rounds' when
// there are rounds, else the results.
func (r *Report) runsByTransport() (order []string, runs map[string][]*Result) {
	runs = map[string][]*Result{}
	add := func(x *Result) {
		if _, ok := runs[x.Transport]; !ok {
			order = append(order, x.Transport)
		}
		runs[x.Transport] = append(runs[x.Transport], x)
	}
	if len(r.Rounds) > 0 {
		for i := range r.Rounds {
			for j := range r.Rounds[i].Results {
				add(&r.Rounds[i].Results[j])
			}
		}
	} else {
		for i := range r.Results {
			add(&r.Results[i])
		}
	}
	return order, runs
}

// writeExtras writes, below the table, the BLOCKING phases and what went
// to disk (median [min-max] over the runs), then every transport's peak
// RSS beside its network memory.
func (r *Report) writeExtras(w io.Writer) error {
	order, runs := r.runsByTransport()
	spread := func(rs []*Result, f func(*Result) (float64, bool)) Spread {
		var vs []float64
		for _, x := range rs {
			if v, ok := f(x); ok && x.Error == "" {
				vs = append(vs, v)
			}
		}
		return SpreadOf(vs)
	}
	blocking := func(f func(*Blocking) float64) func(*Result) (float64, bool) {
		return func(x *Result) (float64, bool) {
			if x.Blocking == nil {
				return 0, false
			}
			return f(x.Blocking), true
		}
	}
	head := false
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, t := range order {
		rs := runs[t]
		disk := spread(rs, blocking(func(b *Blocking) float64 { return float64(b.SpilledBytes) / (1 << 20) }))
		if disk.N == 0 {
			continue
		}
		if !head {
			head = true
			fmt.Fprintf(w, "blocking partitions (compression %s): produce all, finish, then consume; median [min-max] over runs\n", orDash(r.Config.Compression))
			fmt.Fprintln(tw, "transport\tproduce rec/ms\tconsume rec/ms\tend-to-end rec/ms\ton disk MiB\tdisk ratio\t")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", t,
			spread(rs, blocking(func(b *Blocking) float64 { return b.ProduceRecordsPerMs })).Format("%.1f"),
			spread(rs, blocking(func(b *Blocking) float64 { return b.ConsumeRecordsPerMs })).Format("%.1f"),
			spread(rs, func(x *Result) (float64, bool) { return x.RecordsPerMs, x.Blocking != nil }).Format("%.1f"),
			disk.Format("%.1f"),
			spread(rs, blocking(func(b *Blocking) float64 { return b.DiskRatio })).Format("%.2f"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if head {
		fmt.Fprintln(w, "disk ratio = stream bytes (uncompressed records + length prefixes) / bytes written to disk")
	}
	var codec []string
	for _, t := range order {
		ratio := spread(runs[t], func(x *Result) (float64, bool) {
			return orZero(x.Compression).Ratio, x.Compression != nil && x.Compression.BytesOut > 0
		})
		if ratio.N > 0 {
			codec = append(codec, t+" "+ratio.Format("%.2f"))
		}
	}
	if len(codec) > 0 {
		fmt.Fprintf(w, "compression %s, data buffers in/out (the codec's counts): %s\n", r.Config.Compression, strings.Join(codec, ", "))
	}
	var parts []string
	var netMem int64
	reset := true
	for _, t := range order {
		rss := spread(runs[t], func(x *Result) (float64, bool) {
			if x.PeakRSS == nil || x.PeakRSS.Bytes <= 0 {
				return 0, false
			}
			netMem = max(netMem, x.PeakRSS.NetworkMemory)
			reset = reset && x.PeakRSS.Reset
			return float64(x.PeakRSS.Bytes) / (1 << 20), true
		})
		if rss.N > 0 {
			parts = append(parts, t+" "+rss.Format("%.0f"))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	note := ""
	if !reset {
		note = " (not reset between runs: each is the process's peak so far)"
	}
	_, err := fmt.Fprintf(w, "peak RSS MiB%s: %s; network memory of the two nodes %d MiB\n", note, strings.Join(parts, ", "), netMem>>20)
	return err
}

func orZero(c *Compression) Compression {
	if c == nil {
		return Compression{}
	}
	return *c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
