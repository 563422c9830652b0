package cli

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/exchange"
)

// Values of -partition-type and -compression.
const (
	partPipelined = "pipelined"
	partBlocking  = "blocking"
	codecNone     = "none"
	codecLZ4      = "lz4"
)

// blockingOptions are bench's -partition-type, -compression and
// -spill-dir: BLOCKING partitions (written to disk, consumed after
// Finish; docs/architecture.md, "The model") and LZ4 per buffer.
type blockingOptions struct {
	partitionType string
	compression   string // "" until validated: the type's default
	spillDir      string
}

func (b *blockingOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&b.partitionType, "partition-type", partPipelined, "result partition type: pipelined (consumed while produced) or blocking (every producer writes all its records to -spill-dir and finishes, then the consumers read them; tcp, quic and mem only)")
	fs.StringVar(&b.compression, "compression", "", "per-buffer compression: none or lz4 (default: lz4 for blocking partitions, stored compressed once; none for pipelined ones, as in Flink)")
	fs.StringVar(&b.spillDir, "spill-dir", "", "where blocking partitions write their files (default: the OS temp dir); checked writable before any run")
}

// blocking reports whether the run uses BLOCKING partitions.
func (b *blockingOptions) blocking() bool { return b.partitionType == partBlocking }

// partitionConfig sets the partition type and codec on c.
func (b *blockingOptions) partitionConfig(c exchange.PartitionConfig) exchange.PartitionConfig {
	c.Type = exchange.PipelinedBounded
	if b.blocking() {
		c.Type = exchange.Blocking
	}
	c.Compression = exchange.CompressionNone
	if b.compression == codecLZ4 {
		c.Compression = exchange.CompressionLZ4
	}
	return c
}

// validateBlocking checks the three flags and resolves -compression.
func (o *options) validateBlocking() error {
	b := &o.blk
	switch b.partitionType {
	case partPipelined, partBlocking:
	default:
		return usagef("-partition-type: unknown type %q (want pipelined or blocking)", b.partitionType)
	}
	switch b.compression {
	case "":
		b.compression = codecNone
		if b.blocking() {
			b.compression = codecLZ4
		}
	case codecNone, codecLZ4:
	default:
		return usagef("-compression: unknown codec %q (want none or lz4)", b.compression)
	}
	if !b.blocking() {
		if o.set["spill-dir"] {
			return usagef("-spill-dir is for -partition-type blocking (pipelined partitions write nothing to disk)")
		}
		return nil
	}
	if o.link.on {
		return usagef("-partition-type blocking runs on loopback only (not on the emulated link)")
	}
	for _, t := range o.transports.items {
		if t == tRawTCP || t == tRawQUIC {
			return usagef("-partition-type blocking: %s is a plain stream without partitions; use -transport tcp, quic or mem", t)
		}
	}
	dir := b.spillDir
	if dir == "" {
		dir = os.TempDir()
	}
	return checkWritableDir("spill-dir", dir)
}

// fillConfig records the flags in the JSON's config.
func (b *blockingOptions) fillConfig(c *results.Config) {
	c.PartitionType, c.Compression, c.SpillDir = b.partitionType, b.compression, b.spillDir
}

// stopsOnDuration: -duration ends the producers, except in a blocking
// run with -records, whose consumers must read every record anyway.
func (o *options) stopsOnDuration() bool {
	return !o.blk.blocking() || o.records == 0
}

// blockingPhases measures a BLOCKING run: the produce phase ends when
// every partition has finished (its file is complete), the consume phase
// when the last consumer is done.
type blockingPhases struct {
	produce time.Duration
	spilled int64
}

// produced notes the end of the produce phase: its time and the files'
// sizes (read now, before the partitions are released).
func (ph *blockingPhases) produced(since time.Time, parts []*exchange.ResultPartition) {
	ph.produce = time.Since(since)
	for _, p := range parts {
		ph.spilled += p.SpilledBytes()
	}
}

// result is the run's Blocking figures; total is the end-to-end time and
// r's counts are final.
func (ph *blockingPhases) result(r *results.Result, total time.Duration) *results.Blocking {
	b := &results.Blocking{
		ProduceSeconds: ph.produce.Seconds(),
		ConsumeSeconds: (total - ph.produce).Seconds(),
		SpilledBytes:   ph.spilled,
	}
	if b.ProduceSeconds > 0 {
		b.ProduceRecordsPerMs = float64(r.Records) / b.ProduceSeconds / 1000
	}
	if b.ConsumeSeconds > 0 {
		b.ConsumeRecordsPerMs = float64(r.Records) / b.ConsumeSeconds / 1000
	}
	if b.SpilledBytes > 0 {
		b.DiskRatio = float64(r.StreamBytes) / float64(b.SpilledBytes)
	}
	return b
}

// compressionResult sums the partitions' codec counts (nil without
// compression).
func (b *blockingOptions) compressionResult(parts []*exchange.ResultPartition) *results.Compression {
	if b.compression != codecLZ4 {
		return nil
	}
	c := &results.Compression{Codec: b.compression}
	for _, p := range parts {
		if p != nil {
			s := p.CompressionStats()
			c.Add(results.Compression{Buffers: s.Buffers, Compressed: s.Compressed, BytesIn: s.BytesIn, BytesOut: s.BytesOut})
		}
	}
	return c
}

// resetPeakRSS returns what the previous runs left to the OS and resets
// the process's peak RSS (Linux: writing 5 to /proc/self/clear_refs), so
// that the next peakRSS is this run's. False when the peak could not be
// reset.
func resetPeakRSS() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is the process's peak resident set (VmHWM) in bytes, 0 where
// /proc/self/status has none.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// measurePeakRSS runs run and attaches the process's peak RSS during it,
// beside the network memory of its two environments (none for the raw
// baselines).
func measurePeakRSS(o *options, name string, run func() results.Result) results.Result {
	reset := resetPeakRSS()
	r := run()
	if n := peakRSS(); n > 0 {
		var netMem int64
		if name != tRawTCP && name != tRawQUIC {
			netMem = 2 * o.networkMemory.n
		}
		r.PeakRSS = &results.PeakRSS{Bytes: n, NetworkMemory: netMem, Reset: reset}
	}
	return r
}
