// Package results holds the benchmark's result types, their JSON form and
// the human table. Later work adds fields here (per-channel throughput,
// stall time, emulator counters); keep additions backward compatible
// (new fields with omitempty or zero meaning "not measured").
package results

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Transport names as they appear in results.
const (
	TCP     = "tcp"
	QUIC    = "quic"
	RawTCP  = "raw-tcp"
	RawQUIC = "raw-quic"
	Mem     = "mem"
)

// Config is every flag of a run, resolved (presets applied, defaults
// filled in). Durations are Go duration strings; sizes are bytes.
type Config struct {
	Command       string   `json:"command"`
	Preset        string   `json:"preset,omitempty"`
	Transports    []string `json:"transports"`
	Writers       int      `json:"writers"`
	Readers       int      `json:"readers"`
	Channels      int      `json:"channels"`
	RecordSize    int      `json:"record_size"`
	Selector      string   `json:"selector"`
	Duration      string   `json:"duration"`
	Records       int64    `json:"records"`
	BufferTimeout string   `json:"buffer_timeout"`
	SegmentSize   int      `json:"segment_size"`
	NetworkMemory int64    `json:"network_memory"`
	// RecordRate is -record-rate: records/s per writer (0: unpaced); in
	// link mode the rate -load works out to.
	RecordRate float64 `json:"record_rate"`
	// SampleEvery: one record in SampleEvery carries a fresh timestamp
	// and is measured (records under 32 bytes only; 1 = every record).
	SampleEvery int `json:"sample_every"`
	// Batch is -batch resolved: records each writer hands to EmitAll at
	// once (1: Emit record by record, as every paced writer does). Absent
	// for consume and in documents written before batches, which emitted
	// record by record.
	Batch   int    `json:"batch,omitempty"`
	JSON    string `json:"json,omitempty"`
	Verbose bool   `json:"verbose"`
	// serve / consume only
	Job     string `json:"job,omitempty"`
	Listen  string `json:"listen,omitempty"`
	Connect string `json:"connect,omitempty"`
	Wait    string `json:"wait,omitempty"`
	// Verify is -verify: "full" (every record fully checked) or
	// "sampled" (the O(size) checksum on one record in 64 per channel;
	// sequence and check word still on every record). Absent in documents
	// written before the flag existed, which were all "full".
	Verify string `json:"verify,omitempty"`
	// Verification describes what the record format lets the consumer
	// check at RecordSize.
	Verification string `json:"verification"`
	GoVersion    string `json:"go_version,omitempty"`
	// Link mode: the link flags as given (the sweep's values are in each
	// SweepPoint).
	Loss     string  `json:"loss,omitempty"`
	Burst    float64 `json:"burst,omitempty"`
	RTT      string  `json:"rtt,omitempty"`
	LinkRate string  `json:"link_rate,omitempty"`
	Queue    int     `json:"queue,omitempty"`
	Seed     int64   `json:"seed,omitempty"`
	TCPCC    string  `json:"tcp_cc,omitempty"`
	Load     float64 `json:"load,omitempty"`
	Sweep    string  `json:"sweep,omitempty"`
	Warmup   string  `json:"warmup,omitempty"`
	CPUs     int     `json:"cpus,omitempty"`
	// Repeat is -repeat: interleaved rounds of the loopback bench.
	Repeat int `json:"repeat,omitempty"`
	// Calibrate is -calibrate: each raw baseline's two calibration runs
	// ("0s": none).
	Calibrate string `json:"calibrate,omitempty"`
	// Seeds are the link bench's seeds (-seeds, or -seed alone).
	Seeds []int64 `json:"seeds,omitempty"`
	// Connections is -connections: connections per peer node, both
	// transports.
	Connections int `json:"connections,omitempty"`
	// QlogDir is -qlog: where QUIC runs write qlog traces.
	QlogDir string `json:"qlog_dir,omitempty"`
	// PartitionType (pipelined, blocking), Compression (none, lz4) and
	// SpillDir: -partition-type, -compression resolved, -spill-dir.
	// Absent in documents written before them (pipelined, none).
	PartitionType string `json:"partition_type,omitempty"`
	Compression   string `json:"compression,omitempty"`
	SpillDir      string `json:"spill_dir,omitempty"`
}

// Latency percentiles in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	// Samples is how many records (or, for raw baselines, segments) were
	// measured; 0 means latency was not measured.
	Samples uint64 `json:"samples"`
}

// Result is one transport's run.
type Result struct {
	Transport string `json:"transport"`
	// Records received and verified by the consumers (with broadcast,
	// every copy counts). 0 for raw baselines.
	Records int64 `json:"records"`
	// Bytes of record payload received (Records x record size); for raw
	// baselines the stream bytes moved.
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// RecordsPerMs = Records / Seconds / 1000.
	RecordsPerMs float64 `json:"records_per_ms"`
	// MBytesPerSec = Bytes / Seconds / 10^6.
	MBytesPerSec float64 `json:"mbytes_per_sec"`
	// StreamBytes is what the exchange serialised: record bytes plus the
	// 4-byte length prefix of each record (not counting frame headers).
	// For raw baselines, equal to Bytes. Ratios compare this.
	StreamBytes int64   `json:"stream_bytes"`
	LatencyUS   Latency `json:"latency_us"`
	Sent        int64   `json:"sent"`
	Lost        int64   `json:"lost"`
	Duplicated  int64   `json:"duplicated"`
	Reordered   int64   `json:"reordered"`
	// ChecksumFailures: records whose xxhash (>= 32 bytes) or check word
	// and filler (smaller records) did not match.
	ChecksumFailures int64 `json:"checksum_failures"`
	// Invalid: records that parsed but could not be right: from the wrong
	// producer, routed to the wrong subpartition, before the stream's
	// hello, or beyond the producer's final count.
	Invalid    int64   `json:"invalid"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// Link mode only (see link.go): per-channel throughput and stall
	// time, the emulator's counters for this run, and the latency CDF.
	Channels   *Channels  `json:"channels,omitempty"`
	Emulator   *Emulator  `json:"emulator,omitempty"`
	LatencyCDF []CDFPoint `json:"latency_cdf,omitempty"`
	// Blocking: the phases of a BLOCKING partition run and what went to
	// disk; Compression: the codec's counts (with lz4); PeakRSS: the
	// process's peak resident memory during the run (blocking.go).
	Blocking    *Blocking    `json:"blocking,omitempty"`
	Compression *Compression `json:"compression,omitempty"`
	PeakRSS     *PeakRSS     `json:"peak_rss,omitempty"`
	// Error is set when the run failed (a channel error, a setup failure).
	Error string `json:"error,omitempty"`
}

// Clean reports whether every verification count is zero and no error
// occurred.
func (r *Result) Clean() bool {
	return r.Error == "" && r.Lost == 0 && r.Duplicated == 0 && r.Reordered == 0 &&
		r.ChecksumFailures == 0 && r.Invalid == 0
}

// Finish fills the derived rates from the counts and Seconds.
func (r *Result) Finish() {
	if r.Seconds > 0 {
		r.RecordsPerMs = float64(r.Records) / r.Seconds / 1000
		r.MBytesPerSec = float64(r.Bytes) / r.Seconds / 1e6
	}
}

// StreamMBps is StreamBytes per second in 10^6 bytes.
func (r *Result) StreamMBps() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.StreamBytes) / r.Seconds / 1e6
}

// Report is the JSON document: the resolved config and one result per
// transport, in run order.
type Report struct {
	// SchemaVersion is SchemaVersion when written by this version.
	SchemaVersion int    `json:"schema_version"`
	Config        Config `json:"config"`
	// Link is the emulated link (link mode only; with several seeds, the
	// first seed's).
	Link *Link `json:"link,omitempty"`
	// Results has one entry per transport: with one round (or seed) its
	// result, with several the Aggregate of all of them.
	Results []Result `json:"results"`
	// Calibration and Rounds: the loopback bench's noise measurement and
	// every round; Seeds: the link bench's every seed (when more than one).
	Calibration *Calibration `json:"calibration,omitempty"`
	Rounds      []Round      `json:"rounds,omitempty"`
	Seeds       []SeedRun    `json:"seeds,omitempty"`
	Summary     *Summary     `json:"summary,omitempty"`
}

// Clean reports whether every result is clean.
func (r *Report) Clean() bool {
	for i := range r.Results {
		if !r.Results[i].Clean() {
			return false
		}
	}
	return true
}

// Find returns the result for transport name, or nil.
func (r *Report) Find(name string) *Result {
	for i := range r.Results {
		if r.Results[i].Transport == name {
			return &r.Results[i]
		}
	}
	return nil
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	r.SchemaVersion = SchemaVersion
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJSONFileOf writes v as indented JSON to path (e.g. a Sweep).
func WriteJSONFileOf(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteJSONFile writes r to path.
func (r *Report) WriteJSONFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadJSON parses a report.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// rawFor names the raw baseline a transport is compared with.
func rawFor(name string) string {
	switch name {
	case TCP:
		return RawTCP
	case QUIC:
		return RawQUIC
	}
	return ""
}

// WriteTable writes a human-readable table of r: with rounds, the medians
// and ranges over them (WriteRoundsTable).
func (r *Report) WriteTable(w io.Writer) error {
	var err error
	if r.Summary != nil && len(r.Rounds) > 0 {
		err = r.WriteRoundsTable(w)
	} else {
		fmt.Fprintln(w, r.configLine())
		err = r.writeSingleTable(w)
	}
	if err != nil {
		return err
	}
	return r.writeExtras(w)
}

// configLine describes the workload in one line.
func (r *Report) configLine() string {
	c := r.Config
	var b strings.Builder
	fmt.Fprintf(&b, "%d writers x %d readers = %d channels, %d-byte records, selector %s, buffer timeout %s, segment %d B",
		c.Writers, c.Readers, c.Channels, c.RecordSize, c.Selector, c.BufferTimeout, c.SegmentSize)
	if c.RecordRate > 0 {
		fmt.Fprintf(&b, ", rate %.0f rec/s per writer", c.RecordRate)
	}
	if c.PartitionType != "" && c.PartitionType != "pipelined" || c.Compression != "" && c.Compression != "none" {
		fmt.Fprintf(&b, ", %s partitions, compression %s", c.PartitionType, c.Compression)
	}
	if c.Preset != "" {
		fmt.Fprintf(&b, " (preset %s)", c.Preset)
	}
	if c.Connections > 1 {
		fmt.Fprintf(&b, ", %d connections per node", c.Connections)
	}
	return b.String()
}

func (r *Report) writeSingleTable(w io.Writer) error {
	c := r.Config
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "transport\trecords\trec/ms\tMB/s\tstream MB/s\tvs raw\tp50 µs\tp99 µs\tp99.9 µs\tmax µs\tlost\tdup\treord\tbad\tcpu s\t")
	for i := range r.Results {
		x := &r.Results[i]
		ratio := "-"
		if raw := r.Find(rawFor(x.Transport)); raw != nil && raw.StreamMBps() > 0 {
			ratio = fmt.Sprintf("%.2f", x.StreamMBps()/raw.StreamMBps())
		}
		recs, rpm := "-", "-"
		if x.Records > 0 || !isRaw(x.Transport) {
			recs = fmt.Sprintf("%d", x.Records)
			rpm = fmt.Sprintf("%.1f", x.RecordsPerMs)
		}
		lat := [4]string{"-", "-", "-", "-"}
		if x.LatencyUS.Samples > 0 {
			for k, v := range []float64{x.LatencyUS.P50, x.LatencyUS.P99, x.LatencyUS.P999, x.LatencyUS.Max} {
				lat[k] = fmtUS(v)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%.2f\t\n",
			x.Transport, recs, rpm, x.MBytesPerSec, x.StreamMBps(), ratio,
			lat[0], lat[1], lat[2], lat[3],
			x.Lost, x.Duplicated, x.Reordered, x.ChecksumFailures+x.Invalid, x.CPUSeconds)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i := range r.Results {
		x := &r.Results[i]
		if x.Error != "" {
			fmt.Fprintf(w, "%s: ERROR: %s\n", x.Transport, x.Error)
		}
	}
	fmt.Fprintln(w, "stream MB/s counts record bytes + 4-byte length prefixes; \"vs raw\" = stream MB/s / the raw baseline's; bad = checksum failures + invalid records")
	if c.Verification != "" {
		fmt.Fprintln(w, "verified: "+c.Verification)
	}
	return nil
}

func isRaw(name string) bool { return strings.HasPrefix(name, "raw-") }

func fmtUS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
