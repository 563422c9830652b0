package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

func TestBlockingUsageErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	checkUsageErrors(t, []usageCase{
		{[]string{"bench", "-partition-type", "batch"}, `-partition-type: unknown type "batch" (want pipelined or blocking)`},
		{[]string{"bench", "-partition-type", "BLOCKING"}, `unknown type "BLOCKING"`},
		{[]string{"bench", "-compression", "zstd"}, `-compression: unknown codec "zstd" (want none or lz4)`},
		{[]string{"bench", "-preset", "blocking", "-compression", "snappy"}, `unknown codec "snappy"`},
		{[]string{"bench", "-partition-type", "blocking", "-transport", "tcp,raw-tcp"}, "raw-tcp is a plain stream without partitions"},
		{[]string{"bench", "-preset", "blocking", "-transport", "all"}, "raw-tcp is a plain stream without partitions"},
		{[]string{"bench", "-spill-dir", t.TempDir()}, "-spill-dir is for -partition-type blocking"},
		{[]string{"bench", "-preset", "blocking", "-spill-dir", filepath.Join(notDir, "sub")}, "-spill-dir " + filepath.Join(notDir, "sub") + ": cannot create the directory"},
		{[]string{"bench", "-partition-type", "blocking", "-transport", "tcp", "-loss", "1%"}, "loopback only"},
	})
}

func TestBlockingPresetsAndDefaults(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		typ, codec  string
		records     int64
		transports  string
		writers     int
		readers     int
		recordSize  int
		fullBuffers bool
	}{
		{[]string{"-preset", "blocking"}, partBlocking, codecLZ4, 15_000_000, "tcp,quic", 4, 4, 8, true},
		{[]string{"-preset", "blocking-uncompressed"}, partBlocking, codecNone, 15_000_000, "tcp,quic", 4, 4, 8, true},
		// Explicit flags win over the preset.
		{[]string{"-preset", "blocking", "-records", "1000", "-record-size", "1024", "-transport", "mem"}, partBlocking, codecLZ4, 1000, "mem", 4, 4, 1024, true},
		// Flink's defaults: lz4 for blocking, none for pipelined.
		{[]string{"-partition-type", "blocking", "-transport", "tcp"}, partBlocking, codecLZ4, 0, "tcp", 4, 16, 64, false},
		{nil, partPipelined, codecNone, 0, "tcp,quic,raw-tcp,raw-quic", 4, 16, 64, false},
		{[]string{"-compression", "lz4"}, partPipelined, codecLZ4, 0, "tcp,quic,raw-tcp,raw-quic", 4, 16, 64, false},
	} {
		o := mustParse(t, append([]string{"bench"}, tc.args...)...)
		b := o.blk
		if b.partitionType != tc.typ || b.compression != tc.codec || o.records != tc.records || o.transports.String() != tc.transports ||
			o.writers != tc.writers || o.readers != tc.readers || o.recordSize != tc.recordSize ||
			(o.bufferTimeout.d == exchange.FlushFullBuffersOnly) != tc.fullBuffers {
			t.Errorf("%v: got type %s codec %s records %d transports %s %dx%d size %d timeout %v", tc.args, b.partitionType, b.compression,
				o.records, o.transports.String(), o.writers, o.readers, o.recordSize, o.bufferTimeout.d)
		}
		c := o.resultsConfig()
		if c.PartitionType != tc.typ || c.Compression != tc.codec {
			t.Errorf("%v: config %s %s", tc.args, c.PartitionType, c.Compression)
		}
		pc := b.partitionConfig(exchange.PartitionConfig{})
		if (pc.Type == exchange.Blocking) != (tc.typ == partBlocking) || (pc.Compression == exchange.CompressionLZ4) != (tc.codec == codecLZ4) {
			t.Errorf("%v: partition config %v %v", tc.args, pc.Type, pc.Compression)
		}
	}
	// -records bounds a blocking run, not -duration: its consumers must
	// read every record written.
	if o := mustParse(t, "bench", "-preset", "blocking"); o.stopsOnDuration() {
		t.Error("blocking with -records stops on -duration")
	}
	if o := mustParse(t, "bench", "-partition-type", "blocking", "-transport", "tcp"); !o.stopsOnDuration() {
		t.Error("blocking without -records runs forever")
	}
}

// TestBenchBlocking runs BLOCKING partitions on tcp and quic (and mem),
// compressed and not: every record arrives once and in order, the files
// are counted and gone afterwards, and compressible records shrink.
func TestBenchBlocking(t *testing.T) {
	defer transporttest.CheckGoroutines(t)()
	for _, codec := range []string{codecLZ4, codecNone} {
		t.Run(codec, func(t *testing.T) {
			spill := t.TempDir()
			// 64-byte records: the filler compresses; 2 x 3 channels.
			transports := "tcp,quic"
			if codec == codecNone {
				transports = "mem,tcp,quic" // and the in-process transport once (lz4 is slow under -race)
			}
			rep, table := runBenchCmd(t, "-preset", "blocking", "-compression", codec, "-transport", transports,
				"-records", "200000", "-record-size", "64", "-writers", "2", "-readers", "3",
				"-repeat", "1", "-calibrate", "0", "-spill-dir", spill)
			if c := rep.Config; c.PartitionType != partBlocking || c.Compression != codec || c.SpillDir != spill {
				t.Errorf("config %+v", c)
			}
			if len(rep.Results) != strings.Count(transports, ",")+1 {
				t.Fatalf("%d results", len(rep.Results))
			}
			for i := range rep.Results {
				r := &rep.Results[i]
				checkClean(t, r)
				b := r.Blocking
				if r.Records != 200000 || b == nil {
					t.Fatalf("%s: %d records, blocking %+v", r.Transport, r.Records, b)
				}
				if b.SpilledBytes <= 0 || b.ProduceSeconds <= 0 || b.ConsumeSeconds <= 0 || b.ProduceRecordsPerMs <= r.RecordsPerMs || b.ConsumeRecordsPerMs <= r.RecordsPerMs {
					t.Errorf("%s: blocking %+v, end to end %.1f rec/ms", r.Transport, b, r.RecordsPerMs)
				}
				switch codec {
				case codecLZ4:
					if b.DiskRatio <= 1.5 || r.Compression == nil || r.Compression.Ratio <= 1.5 || r.Compression.Compressed == 0 {
						t.Errorf("%s: lz4 disk ratio %.2f, codec %+v", r.Transport, b.DiskRatio, r.Compression)
					}
				case codecNone:
					// Headers and events make the file a little larger.
					if b.DiskRatio > 1 || b.DiskRatio < 0.95 || r.Compression != nil {
						t.Errorf("%s: uncompressed disk ratio %.3f, codec %+v", r.Transport, b.DiskRatio, r.Compression)
					}
				}
				if p := r.PeakRSS; p == nil || p.Bytes <= 0 || p.NetworkMemory != 2*exchange.DefaultNetworkMemory {
					t.Errorf("%s: peak RSS %+v", r.Transport, p)
				}
			}
			for _, w := range []string{"blocking partitions, compression " + codec, "produce rec/ms", "on disk MiB", "disk ratio", "peak RSS MiB", "compression " + codec, "network memory of the two nodes 128 MiB", "1 round(s) of 200000 records per transport"} {
				if !strings.Contains(table, w) {
					t.Errorf("table lacks %q:\n%s", w, table)
				}
			}
			b, _ := json.Marshal(rep)
			for _, k := range []string{`"partition_type":"blocking"`, `"spilled_bytes"`, `"disk_ratio"`, `"produce_records_per_ms"`, `"peak_rss"`} {
				if !bytes.Contains(b, []byte(k)) {
					t.Errorf("JSON lacks %s", k)
				}
			}
			// Every node removed its files at close.
			var left []string
			filepath.WalkDir(spill, func(path string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					left = append(left, path)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("spill files left: %v", left)
			}
			t.Logf("\n%s", table)
		})
	}
}

// TestBenchPipelinedCompression: -compression lz4 on a pipelined
// partition compresses what crosses the network; every record arrives.
func TestBenchPipelinedCompression(t *testing.T) {
	defer transporttest.CheckGoroutines(t)()
	rep, table := runBenchCmd(t, "-compression", "lz4", "-transport", "tcp", "-records", "100000", "-duration", "1m",
		"-readers", "4", "-repeat", "1", "-calibrate", "0")
	r := &rep.Results[0]
	checkClean(t, r)
	if r.Blocking != nil || r.Compression == nil || r.Compression.Compressed == 0 || r.Compression.Ratio <= 1.5 {
		t.Errorf("blocking %+v, compression %+v", r.Blocking, r.Compression)
	}
	if !strings.Contains(table, "pipelined partitions, compression lz4") || !strings.Contains(table, "compression lz4, data buffers in/out") || strings.Contains(table, "produce rec/ms") {
		t.Errorf("table:\n%s", table)
	}
}
