package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/qexchange/qexchange/bench/results"
	"github.com/qexchange/qexchange/bench/workload"
	"github.com/qexchange/qexchange/exchange"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailed  = 1 // a run failed or verification found problems
	ExitUsage   = 2 // wrong flags
	MaxSegment  = 16 << 20
	MaxRecord   = exchange.DefaultMaxRecordSize
	defaultJob  = "qexchange-bench"
	secretLabel = "qexchange-insecure-test-secret/"
)

// usageError is a wrong flag: one line on stderr, exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// sizeValue is a byte size flag: 32768, 32KiB, 32K (= KiB), 32KB (10^3),
// likewise M/MiB/MB and G/GiB/GB.
type sizeValue struct{ n int64 }

func (s *sizeValue) String() string { return formatSize(s.n) }

func (s *sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	s.n = n
	return nil
}

func parseSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++
	}
	num, unit := v[:i], strings.TrimSpace(v[i:])
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("bad size %q (want e.g. 32768, 32KiB, 64MiB)", v)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	}[strings.ToLower(unit)]
	if mult == 0 {
		return 0, fmt.Errorf("bad size unit %q in %q (want B, KiB, MiB, GiB, K, M, G, KB, MB, GB)", unit, v)
	}
	n := f * mult
	if n > math.MaxInt64/2 || n != math.Trunc(n) {
		return 0, fmt.Errorf("bad size %q", v)
	}
	return int64(n), nil
}

func formatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return strconv.FormatInt(n, 10)
}

// timeoutValue is -buffer-timeout: a positive duration, 0 (flush every
// record) or -1 (full buffers only).
type timeoutValue struct{ d time.Duration }

func (t *timeoutValue) String() string { return formatTimeout(t.d) }

func formatTimeout(d time.Duration) string {
	switch d {
	case exchange.FlushEveryRecord:
		return "0"
	case exchange.FlushFullBuffersOnly:
		return "-1"
	}
	return d.String()
}

func (t *timeoutValue) Set(v string) error {
	switch strings.TrimSpace(v) {
	case "0", "0s":
		t.d = exchange.FlushEveryRecord
		return nil
	case "-1":
		t.d = exchange.FlushFullBuffersOnly
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("bad buffer timeout %q (want a positive duration like 100ms, 0 = flush every record, -1 = full buffers only)", v)
	}
	t.d = d
	return nil
}

// listValue is a comma-separated list.
type listValue struct{ items []string }

func (l *listValue) String() string { return strings.Join(l.items, ",") }

func (l *listValue) Set(v string) error {
	l.items = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			l.items = append(l.items, strings.ToLower(s))
		}
	}
	return nil
}

// options are the flags of every command (each command registers the
// ones it uses).
type options struct {
	cmd           string
	transports    listValue
	writers       int
	readers       int
	recordSize    int
	selector      string
	duration      time.Duration
	records       int64
	bufferTimeout timeoutValue
	segmentSize   sizeValue
	networkMemory sizeValue
	recordRate    float64
	sampleEvery   int
	batch         int

	// repeats, seeds, -connections, -qlog (see repeatflags.go)
	rep repeatOptions

	// bench on the emulated link (see linkflags.go)
	link       linkOptions
	blk        blockingOptions // -partition-type, -compression, -spill-dir (blocking.go)
	barrier    barrierOptions  // -barrier, -debloat (barrier.go)
	preset     string
	jsonPath   string
	verbose    bool
	cpuProfile string

	// serve / consume
	job         string
	listen      string
	advertise   string
	connect     string
	wait        time.Duration
	secret      string
	tlsCert     string
	tlsKey      string
	tlsCA       string
	idleTimeout time.Duration

	// every command
	metricsAddr string // -metrics: serve /metrics and /debug/pprof/ here
	showVersion bool
	verify      string // bench, serve: workload.VerifyFull or VerifySampled

	set map[string]bool // flags given on the command line

	// Set by MainWithHooks, not by flags.
	metrics       *metricsServer // nil without -metrics
	progressEvery time.Duration  // non-terminal progress report interval
	stderrTTY     bool           // stderr is a terminal: redraw one line instead
}

// presets: flag values applied unless the flag is given explicitly.
var presets = map[string]map[string]string{
	"throughput-100": {"writers": "4", "readers": "100", "record-size": "8", "buffer-timeout": "100ms"},
	// 1000 gates x (4x2 + 8) segments of 32 KiB = 500 MiB on the consumer.
	"throughput-1000-1ms": {"writers": "4", "readers": "1000", "record-size": "8", "buffer-timeout": "1ms", "network-memory": "512MiB"},
	"broadcast":           {"writers": "4", "readers": "100", "selector": "broadcast"},
	// Paced load so queues stay short: 10,000 records/s per writer, every
	// record flushed and timestamped.
	"latency": {"writers": "1", "readers": "1", "buffer-timeout": "0", "record-rate": "10000"},
	// A slow consumer (10% of the producer's 5,000 records/s) and an
	// aligned checkpoint barrier every 500 ms (barrier.go).
	"barrier": {"writers": "1", "readers": "1", "record-rate": "5000", "consumer-rate": "0.1", "barrier": "aligned", "duration": "28s", "barrier-warmup": "4s", "repeat": "1", "calibrate": "0", "transport": "tcp,quic"},
	// Flink's BlockingPartitionBenchmark: 15M 8-byte records, parallelism
	// 4 (here 4 writers x 4 readers, all to all), full buffers only, the
	// partitions written to disk, then read.
	"blocking":              blockingPreset(codecLZ4),
	"blocking-uncompressed": blockingPreset(codecNone),
}

func blockingPreset(codec string) map[string]string {
	return map[string]string{"partition-type": partBlocking, "compression": codec, "transport": "tcp,quic",
		"writers": "4", "readers": "4", "record-size": "8", "records": "15000000", "buffer-timeout": "-1"}
}

func presetNames() []string {
	n := make([]string, 0, len(presets))
	for k := range presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

const (
	tTCP     = results.TCP
	tQUIC    = results.QUIC
	tRawTCP  = results.RawTCP
	tRawQUIC = results.RawQUIC
	tMem     = results.Mem
)

var benchTransports = []string{tTCP, tQUIC, tRawTCP, tRawQUIC}

// newFlagSet registers the flags of cmd.
func newFlagSet(cmd string, o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("exchange "+cmd, flag.ContinueOnError)
	o.cmd = cmd
	o.bufferTimeout.d = exchange.DefaultBufferTimeout
	o.segmentSize.n = exchange.DefaultSegmentSize
	o.networkMemory.n = exchange.DefaultNetworkMemory
	switch cmd {
	case "bench":
		o.transports.items = []string{"all"}
		fs.Var(&o.transports, "transport", "comma-separated transports to run, in order: tcp, quic, raw-tcp, raw-quic, or all (= tcp,quic,raw-tcp,raw-quic); mem (in-process, no sockets) is accepted for tests")
		fs.DurationVar(&o.duration, "duration", 5*time.Second, "how long each transport runs")
		fs.Int64Var(&o.records, "records", 0, "stop each exchange run after this many records in total (0: run for -duration)")
		fs.StringVar(&o.preset, "preset", "", "set flags from a preset (flags given explicitly win): "+strings.Join(presetNames(), ", ")+
			"; throughput-100: -writers 4 -readers 100 -record-size 8 -buffer-timeout 100ms; throughput-1000-1ms: -writers 4 -readers 1000 -record-size 8 -buffer-timeout 1ms -network-memory 512MiB;"+
			" broadcast: -writers 4 -readers 100 -selector broadcast; latency: -writers 1 -readers 1 -buffer-timeout 0 -record-rate 10000;"+
			" blocking: -partition-type blocking -compression lz4 -transport tcp,quic -writers 4 -readers 4 -record-size 8 -records 15000000 -buffer-timeout -1; blocking-uncompressed: the same with -compression none;"+
			" barrier: -writers 1 -readers 1 -record-rate 5000 -consumer-rate 0.1 -barrier aligned -duration 28s -barrier-warmup 4s -repeat 1 -calibrate 0 -transport tcp,quic")
		o.link.register(fs)
		o.blk.register(fs)
		o.barrier.register(fs)
	case "serve":
		o.transports.items = []string{tTCP}
		fs.Var(&o.transports, "transport", "transport: tcp or quic")
		fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address to listen on (port 0: any free port; the address is printed)")
		fs.StringVar(&o.advertise, "advertise", "", "host:port consumers should dial, when not the listening address (NAT, containers); default: the listening address, a wildcard host replaced by this host's")
		fs.Int64Var(&o.records, "records", 1_000_000, "records to emit in total over all writers (0: until -duration)")
		fs.DurationVar(&o.duration, "duration", 0, "stop emitting after this long (0: no limit)")
	case "consume":
		o.transports.items = []string{tTCP}
		fs.Var(&o.transports, "transport", "transport: tcp or quic")
		fs.StringVar(&o.connect, "connect", "", "the producer's address (host:port), as printed by exchange serve (required)")
		fs.StringVar(&o.listen, "listen", "", "local address of this node's transport (default 127.0.0.1:0 for a loopback producer, :0 otherwise)")
		fs.DurationVar(&o.wait, "wait", 30*time.Second, "how long to keep retrying while the producer is not up yet (partition requests back off from 100ms, doubling)")
	}
	fs.IntVar(&o.writers, "writers", 4, "producer partitions (one writer goroutine each), each with -readers subpartitions")
	fs.IntVar(&o.readers, "readers", 16, "consumer input gates (one reader goroutine each), each with -writers channels: writers x readers channels in all")
	if cmd != "consume" {
		fs.IntVar(&o.recordSize, "record-size", 64, "record size in bytes (>= 8; records of 32 bytes and more carry an xxhash64 checksum)")
		fs.StringVar(&o.selector, "selector", workload.RoundRobin, "channel selector: roundrobin, hash or broadcast")
		fs.Var(&o.bufferTimeout, "buffer-timeout", "flush partially filled buffers this often; 0 = flush every record, -1 = send full buffers only")
		fs.Float64Var(&o.recordRate, "record-rate", 0, "records per second per writer (0: as fast as possible; on the emulated link see -load)")
		fs.IntVar(&o.sampleEvery, "sample-every", 0, "timestamp and measure the latency of one record in N per writer (0: 1 in 16, or every record with -record-rate, -load or the emulated link); every record is still verified")
		fs.IntVar(&o.batch, "batch", 0, fmt.Sprintf("records each writer builds and hands to the exchange at once (RecordWriter.EmitAll: one lock per batch); 1 emits record by record (Emit). 0: %d; at most %s of records; 1 with -record-rate or -load (paced writers emit each record at its time)", workload.DefaultBatch, formatSize(workload.MaxBatchBytes)))
	}
	fs.Var(&o.segmentSize, "segment-size", "network buffer (segment) size, e.g. 32768 or 32KiB (>= 4KiB)")
	fs.Var(&o.networkMemory, "network-memory", "network buffer memory per environment (node), e.g. 64MiB")
	if cmd != "serve" {
		fs.StringVar(&o.jsonPath, "json", "", "also write the results as JSON to this file")
	}
	if cmd != "bench" {
		fs.StringVar(&o.job, "job", defaultJob, "job name: partition ids are derived from it (both sides must agree)")
		fs.StringVar(&o.secret, "secret", "", "shared secret the mutual-TLS certificate is derived from on both sides (quic default: derived from -job, with a warning). Anyone knowing it can impersonate a node; real deployments pass -tls-cert, -tls-key and -tls-ca. On tcp, TLS is off (plain text, for trusted networks only) unless -secret or the -tls-* flags are given")
		fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate file of this node (mutual TLS; turns TLS on for tcp)")
		fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file of this node (with -tls-cert)")
		fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA file that verifies the peer's certificate (with -tls-cert)")
		fs.DurationVar(&o.idleTimeout, "idle-timeout", time.Second, "QUIC only: close a connection after this long without packets (keepalives every third of it); bounds how fast a dead peer is detected")
	}
	if cmd != "consume" {
		fs.StringVar(&o.verify, "verify", workload.VerifyFull, "record verification: full (every record: sequence, check word, and the xxhash64 checksum or filler) or sampled (every record: sequence and check word; the checksum and filler only on 1 record in "+
			fmt.Sprint(workload.SampledChecksumEvery)+" per channel). Loss, duplication and reordering are counted exactly in both; run both to measure what verification costs")
	}
	fs.StringVar(&o.metricsAddr, "metrics", "", "serve Prometheus metrics on http://ADDR/metrics and Go profiles on http://ADDR/debug/pprof/ during the run, e.g. 127.0.0.1:9464 (port 0: any free port, printed on stderr)")
	o.rep.register(fs, cmd)
	fs.BoolVar(&o.showVersion, "version", false, "print the version and the revision the binary was built from, and exit")
	fs.BoolVar(&o.verbose, "v", false, "log to stderr (zerolog)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file")
	return fs
}

// parse parses args into o, applies the preset, and validates. -h gives
// flag.ErrHelp.
func parse(cmd string, args []string, usageOut io.Writer) (*options, error) {
	o := &options{}
	fs := newFlagSet(cmd, o)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, cmd, usageOut)
			return nil, err
		}
		return nil, usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (flags only; see exchange %s -h)", fs.Arg(0), cmd)
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.showVersion {
		return o, nil // nothing runs: the other flags need not be complete
	}
	if o.preset != "" {
		p, ok := presets[o.preset]
		if !ok {
			return nil, usagef("-preset: unknown preset %q (want one of %s)", o.preset, strings.Join(presetNames(), ", "))
		}
		for name, v := range p {
			if o.set[name] {
				continue
			}
			if err := fs.Set(name, v); err != nil {
				return nil, fmt.Errorf("preset %s: %s=%s: %w", o.preset, name, v, err)
			}
		}
	}
	if cmd == "serve" && o.set["duration"] && !o.set["records"] {
		o.records = 0 // -duration alone: emit until it ends
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func printUsage(fs *flag.FlagSet, cmd string, w io.Writer) {
	fs.SetOutput(w)
	fmt.Fprintf(w, "usage: exchange %s [flags]\n\n%s\n\nflags:\n", cmd, commandHelp[cmd])
	fs.PrintDefaults()
}

var commandHelp = map[string]string{
	"bench": `Runs producers and consumers in this process, connected through each
transport on loopback (two environments, two listening addresses), plus
the raw TCP and QUIC baselines, in -repeat interleaved rounds (the order
rotates each round) after a short calibration of the raw baselines;
verifies every record and prints the median [min-max] over rounds of each
figure and of each ratio formed within a round, marked "within noise"
when the calibration's noise floor covers it (and JSON with -json, every
round included). Exits 1 if any record was lost, duplicated, reordered or
corrupted, 2 on wrong flags.

With any of -loss, -burst, -rtt, -rate, -queue or -sweep the run goes over
an emulated lossy link instead of loopback (root and /dev/net/tun needed):
the producer in one network namespace, the consumer in another, joined by
a seeded packet-level emulator. Each setting's link is probed first (RTT,
loss, rate against the configuration; exit 2 when out of tolerance), the
loss pattern is reset for every transport, every record is timestamped,
and the table/JSON add latency p50/p99/p99.9, per-channel throughput and
stall time, the emulator's counters and an "ideal" transport's limit.
-seeds N runs the link benchmark once per seed and adds the median
[min-max] over seeds and the per-seed quic/tcp ratios.
Example: exchange bench -transport tcp,quic -loss 1% -rtt 20ms -rate 100mbit
-load 0.5 -writers 4 -readers 16 -buffer-timeout 10ms -duration 20s -seeds 5`,
	"serve": `Hosts -writers producer partitions (ids derived from -job) with -readers
subpartitions each and emits -records verified records in total (or until
-duration). Prints "listening <transport> <address>" on stdout once ready;
starts emitting (and its clock, and -duration) when the first consumer
connects. Stays up until every consumer acknowledged all records (or
SIGINT/SIGTERM, which prints the records emitted so far and exits 1).`,
	"consume": `Creates -readers input gates reading all -writers x -readers channels of
the partitions of -job at -connect, verifies every record and prints the
summary (table, and JSON with -json). Retries for up to -wait while the
producer is not up. Exits 0 only if every record arrived exactly once, in
order and intact; 1 otherwise (naming the producer's address on failure).
SIGINT/SIGTERM prints the counts so far (received, lost, duplicated,
reordered, corrupted) and exits 1.`,
}

// validate checks the flags and says what to change.
func (o *options) validate() error {
	switch o.cmd {
	case "bench":
		items := o.transports.items
		if len(items) == 0 {
			return usagef("-transport is empty (want tcp, quic, raw-tcp, raw-quic or all)")
		}
		var out []string
		for _, t := range items {
			switch t {
			case "all":
				out = append(out, benchTransports...)
			case tTCP, tQUIC, tRawTCP, tRawQUIC, tMem:
				out = append(out, t)
			default:
				return usagef("-transport: unknown transport %q (want a comma-separated list of tcp, quic, raw-tcp, raw-quic, or all)", t)
			}
		}
		o.transports.items = out
		if o.duration <= 0 {
			return usagef("-duration must be positive (got %v)", o.duration)
		}
	default:
		if len(o.transports.items) != 1 || (o.transports.items[0] != tTCP && o.transports.items[0] != tQUIC) {
			return usagef("-transport %q: %s needs exactly one of tcp or quic", o.transports.String(), o.cmd)
		}
		if o.job == "" {
			return usagef("-job must not be empty")
		}
		if o.idleTimeout <= 0 {
			return usagef("-idle-timeout must be positive (got %v)", o.idleTimeout)
		}
		if (o.tlsCert == "") != (o.tlsKey == "") {
			return usagef("-tls-cert and -tls-key go together (got only one)")
		}
		if o.tlsCert != "" && o.tlsCA == "" {
			return usagef("-tls-cert needs -tls-ca to verify the peer")
		}
		if o.tlsCA != "" && o.tlsCert == "" {
			return usagef("-tls-ca needs -tls-cert and -tls-key: both sides present a certificate")
		}
		if o.tlsCert != "" && o.secret != "" {
			return usagef("-secret and -tls-cert are alternatives: give one")
		}
		if err := o.checkTLSFiles(); err != nil {
			return err
		}
	}
	if o.cmd == "consume" {
		if o.connect == "" {
			return usagef("-connect is required: the producer's host:port as printed by exchange serve")
		}
		if _, _, err := net.SplitHostPort(o.connect); err != nil {
			return usagef("-connect %q is not host:port", o.connect)
		}
		if o.wait <= 0 {
			return usagef("-wait must be positive (got %v)", o.wait)
		}
	}
	if o.cmd == "serve" {
		if o.records < 0 {
			return usagef("-records must be >= 0 (got %d)", o.records)
		}
		if o.records == 0 && o.duration <= 0 {
			return usagef("-records 0 needs a -duration (otherwise the producer never stops)")
		}
		if o.duration < 0 {
			return usagef("-duration must be >= 0 (got %v)", o.duration)
		}
	}
	if o.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.metricsAddr); err != nil {
			return usagef("-metrics %q is not host:port (e.g. 127.0.0.1:9464)", o.metricsAddr)
		}
	}
	if o.records < 0 {
		return usagef("-records must be >= 0 (got %d)", o.records)
	}
	if o.writers < 1 {
		return usagef("-writers must be at least 1 (got %d)", o.writers)
	}
	if o.readers < 1 {
		return usagef("-readers must be at least 1 (got %d)", o.readers)
	}
	if o.writers > 1<<16 || o.readers > 1<<16 {
		return usagef("-writers and -readers must be at most 65536 (got %d x %d)", o.writers, o.readers)
	}
	if o.cmd != "consume" {
		if o.recordSize < workload.MinRecordSize {
			return usagef("-record-size must be at least %d bytes (got %d)", workload.MinRecordSize, o.recordSize)
		}
		if o.recordSize > MaxRecord {
			return usagef("-record-size must be at most %s (got %d)", formatSize(MaxRecord), o.recordSize)
		}
		switch o.selector {
		case workload.RoundRobin, workload.Hash, workload.Broadcast:
		default:
			return usagef("-selector: unknown selector %q (want roundrobin, hash or broadcast)", o.selector)
		}
		if o.recordRate < 0 || math.IsNaN(o.recordRate) || math.IsInf(o.recordRate, 0) {
			return usagef("-record-rate must be >= 0 records/s (got %v)", o.recordRate)
		}
		if o.sampleEvery < 0 {
			return usagef("-sample-every must be >= 0 (got %d)", o.sampleEvery)
		}
		if o.batch < 0 {
			return usagef("-batch must be >= 0 (got %d)", o.batch)
		}
		if o.verify != workload.VerifyFull && o.verify != workload.VerifySampled {
			return usagef("-verify: unknown mode %q (want full or sampled)", o.verify)
		}
	}
	if o.cmd == "bench" {
		if err := o.validateLink(); err != nil {
			return err
		}
		if err := o.validateBlocking(); err != nil {
			return err
		}
		if err := o.validateBarrier(); err != nil {
			return err
		}
	}
	if err := o.validateRepeat(); err != nil {
		return err
	}
	seg := o.segmentSize.n
	if seg < exchange.MinSegmentSize {
		return usagef("-segment-size %s is below the 4KiB minimum: use at least -segment-size 4KiB", formatSize(seg))
	}
	if seg > MaxSegment {
		return usagef("-segment-size %s is above the 16MiB maximum", formatSize(seg))
	}
	if err := o.checkMemory(); err != nil {
		return err
	}
	return o.validateQlog() // last: it creates the directory
}

// memoryNeed returns the segments each side needs at minimum: every
// consumer gate W x 2 exclusive + 8 floating buffers, every producer
// partition R + 1 buffers.
func memoryNeed(w, r int) (consumer, producer int64) {
	return int64(r) * int64(w*exchange.DefaultExclusiveBuffers+exchange.DefaultFloatingBuffers), int64(w) * int64(r+1)
}

func (o *options) checkMemory() error {
	seg := o.segmentSize.n
	have := o.networkMemory.n / seg
	if o.networkMemory.n <= 0 || have < 1 {
		return usagef("-network-memory %s holds no %s segment: raise -network-memory", formatSize(o.networkMemory.n), formatSize(seg))
	}
	cons, prod := memoryNeed(o.writers, o.readers)
	checkCons := o.cmd != "serve"
	checkProd := o.cmd != "consume"
	need := int64(0)
	if checkCons {
		need = cons
	}
	if checkProd {
		need = max(need, prod)
	}
	if need <= have {
		return nil
	}
	needBytes := roundUpMiB(need * seg)
	var why []string
	if checkCons && cons > have {
		why = append(why, fmt.Sprintf("the consumer needs %d gates x (%dx2 exclusive + 8 floating) = %d segments", o.readers, o.writers, cons))
	}
	if checkProd && prod > have {
		why = append(why, fmt.Sprintf("the producer needs %d partitions x (%d+1) = %d segments", o.writers, o.readers, prod))
	}
	return usagef("-network-memory %s (%d x %s segments) is too small for %d writers x %d readers: %s; raise -network-memory to at least %s (or lower -readers, -writers or -segment-size)",
		formatSize(o.networkMemory.n), have, formatSize(seg), o.writers, o.readers, strings.Join(why, " and "), formatSize(needBytes))
}

// batchSize is -batch resolved as the writers resolve it: paced writers
// (-record-rate, -load) emit record by record.
func (o *options) batchSize() int {
	rate := o.recordRate
	if o.link.paces() {
		rate = 1
	}
	return workload.BatchSize(o.recordSize, rate, o.batch)
}

func roundUpMiB(n int64) int64 {
	const mib = 1 << 20
	return (n + mib - 1) / mib * mib
}

// resultsConfig is the resolved configuration for the JSON.
func (o *options) resultsConfig() results.Config {
	c := results.Config{
		Command:       o.cmd,
		Preset:        o.preset,
		Transports:    o.transports.items,
		Writers:       o.writers,
		Readers:       o.readers,
		Channels:      o.writers * o.readers,
		RecordSize:    o.recordSize,
		Selector:      o.selector,
		Duration:      o.duration.String(),
		Records:       o.records,
		BufferTimeout: formatTimeout(o.bufferTimeout.d),
		SegmentSize:   int(o.segmentSize.n),
		NetworkMemory: o.networkMemory.n,
		RecordRate:    o.recordRate,
		SampleEvery:   workload.SampleEvery(o.recordSize, o.recordRate, o.sampleEvery),
		Batch:         o.batchSize(),
		JSON:          o.jsonPath,
		Verbose:       o.verbose,
		Job:           o.job,
		Listen:        o.listen,
		Connect:       o.connect,
		Connections:   o.rep.connections,
		QlogDir:       o.rep.qlogDir,
	}
	if o.cmd == "bench" {
		c.Repeat = o.rep.repeat
		c.Calibrate = o.rep.calibrate.String()
		c.Seeds = o.rep.seeds.seeds
		o.blk.fillConfig(&c)
	}
	if o.cmd == "consume" {
		c.Wait = o.wait.String()
		c.SampleEvery = 0
		c.Batch = 0
	}
	o.link.fillConfig(&c)
	if o.recordSize > 0 {
		c.Verify = o.verify
		c.Verification = workload.Verification(o.recordSize, o.verify)
	}
	return c
}
