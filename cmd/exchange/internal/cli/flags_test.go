package cli

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/bench/workload"
	"github.com/qexchange/qexchange/exchange"
)

// usageCase is a command line that must exit 2 with one line on stderr
// containing want, and nothing on stdout.
type usageCase struct {
	args []string
	want string // in the one line
}

func checkUsageErrors(t *testing.T, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(tc.args, &out, &errb)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, ExitUsage, errb.String())
			}
			msg := errb.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") {
				t.Fatalf("want exactly one line on stderr, got %q", msg)
			}
			if !strings.Contains(msg, tc.want) {
				t.Fatalf("stderr %q lacks %q", msg, tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("stdout not empty: %q", out.String())
			}
		})
	}
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	checkUsageErrors(t, []usageCase{
		{[]string{"bench", "-transport", "udp"}, `unknown transport "udp"`},
		{[]string{"bench", "-transport", "tcp,foo"}, `unknown transport "foo"`},
		{[]string{"bench", "-writers", "0"}, "-writers must be at least 1"},
		{[]string{"bench", "-readers", "-3"}, "-readers must be at least 1"},
		{[]string{"bench", "-segment-size", "2048"}, "4KiB minimum"},
		{[]string{"bench", "-segment-size", "2KiB"}, "4KiB minimum"},
		{[]string{"bench", "-segment-size", "32 parsecs"}, "bad size unit"},
		{[]string{"bench", "-readers", "1000"}, "raise -network-memory to at least 500MiB"},
		{[]string{"bench", "-writers", "100", "-readers", "100"}, "20800 segments"},
		{[]string{"bench", "-record-size", "4"}, "-record-size must be at least 8"},
		{[]string{"bench", "-selector", "random"}, `unknown selector "random"`},
		{[]string{"bench", "-buffer-timeout", "-5ms"}, "bad buffer timeout"},
		{[]string{"bench", "-duration", "0s"}, "-duration must be positive"},
		{[]string{"bench", "-preset", "fastest"}, `unknown preset "fastest"`},
		{[]string{"bench", "-record-rate", "-1"}, "-record-rate must be >= 0"},
		{[]string{"bench", "-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
		{[]string{"bench", "extra"}, `unexpected argument "extra"`},
		{[]string{"serve", "-transport", "raw-tcp"}, "needs exactly one of tcp or quic"},
		{[]string{"serve", "-transport", "mem"}, "needs exactly one of tcp or quic"},
		{[]string{"serve", "-records", "0"}, "-records 0 needs a -duration"},
		{[]string{"consume"}, "-connect is required"},
		{[]string{"consume", "-connect", "nohost"}, "not host:port"},
		{[]string{"consume", "-connect", "127.0.0.1:1", "-wait", "0s"}, "-wait must be positive"},
		{[]string{"consume", "-connect", "127.0.0.1:1", "-tls-cert", "a.pem"}, "-tls-cert and -tls-key go together"},
		{[]string{"serve", "-transport", "tcp", "-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem", "-tls-ca", "/nonexistent/ca.pem"}, "-tls-cert /nonexistent/c.pem / -tls-key /nonexistent/k.pem: open /nonexistent/c.pem: no such file or directory"},
		{[]string{"serve", "-transport", "tcp", "-tls-ca", "ca.pem"}, "-tls-ca needs -tls-cert"},
		{[]string{"serve", "-transport", "tcp", "-tls-cert", "a.pem", "-tls-key", "b.pem", "-tls-ca", "c.pem", "-secret", "s"}, "-secret and -tls-cert are alternatives"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"bench", "-records", "-5"}, "-records must be >= 0 (got -5)"},
		{[]string{"serve", "-records", "-5"}, "-records must be >= 0 (got -5)"},
		{[]string{"bench", "-sample-every", "-2"}, "-sample-every must be >= 0"},
		{[]string{"bench", "-batch", "-1"}, "-batch must be >= 0 (got -1)"},
		{[]string{"serve", "-duration", "-1s", "-records", "10"}, "-duration must be >= 0"},
		{[]string{"bench", "-verify", "some"}, `-verify: unknown mode "some"`},
		{[]string{"bench", "-metrics", "nohost"}, `-metrics "nohost" is not host:port`},
		{[]string{"consume", "-connect", "127.0.0.1:1", "-metrics", "256.1.1.1:80"}, "-metrics 256.1.1.1:80"},
	})
}

// TestBusyMetricsAddressExit2: a -metrics address that cannot be listened
// on is a usage error before any run.
func TestBusyMetricsAddressExit2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	checkUsageErrors(t, []usageCase{
		{[]string{"bench", "-transport", "mem", "-metrics", ln.Addr().String()}, "address already in use"},
	})
}

// TestVersion: -version prints one line and exits 0, also after a
// command whose other flags are incomplete.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"-version"}, {"version"}, {"bench", "-version"}, {"consume", "-version"}} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != ExitOK {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errb.String())
		}
		if v := out.String(); !strings.HasPrefix(v, "exchange ") || strings.Count(v, "\n") != 1 || errb.Len() != 0 {
			t.Fatalf("%v: stdout %q stderr %q", args, v, errb.String())
		}
	}
	if v := versionLine(); !strings.Contains(v, "(devel)") && !strings.Contains(v, " v") {
		t.Errorf("version line %q has neither a module version nor (devel)", v)
	}
}

func TestHelpDocumentsDefaults(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"bench", "-h"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	h := out.String()
	for _, want := range []string{"-transport", "(default all)", "-writers", "(default 4)", "-readers", "(default 16)",
		"-record-size", "(default 64)", "-duration", "(default 5s)", "-buffer-timeout", "(default 100ms)",
		"-segment-size", "(default 32KiB)", "-network-memory", "(default 64MiB)", "-json", "-preset", "-record-rate", "-loss", "-rtt", "-rate", "-sweep", "-tcp-cc", "-load", "-selector",
		"-metrics", "-verify", `(default "full")`, "-version"} {
		if !strings.Contains(h, want) {
			t.Errorf("bench -h lacks %q", want)
		}
	}
	for _, cmd := range []string{"serve", "consume"} {
		out.Reset()
		if code := Main([]string{cmd, "-h"}, &out, &errb); code != ExitOK {
			t.Fatalf("%s -h: exit %d", cmd, code)
		}
		for _, want := range []string{"-job", "-writers", "-readers", "-secret", "-tls-cert"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s -h lacks %q", cmd, want)
			}
		}
	}
	if !strings.Contains(out.String(), "-wait") || !strings.Contains(out.String(), "(default 30s)") {
		t.Errorf("consume -h lacks -wait (default 30s)")
	}
}

func mustParse(t *testing.T, args ...string) *options {
	t.Helper()
	o, err := parse(args[0], args[1:], &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return o
}

func TestDefaultsAndValues(t *testing.T) {
	o := mustParse(t, "bench")
	if got := o.transports.String(); got != "tcp,quic,raw-tcp,raw-quic" {
		t.Errorf("default transports %q", got)
	}
	if o.writers != 4 || o.readers != 16 || o.recordSize != 64 || o.duration != 5*time.Second ||
		o.bufferTimeout.d != 100*time.Millisecond || o.segmentSize.n != 32<<10 || o.networkMemory.n != 64<<20 || o.selector != "roundrobin" {
		t.Errorf("defaults: %+v", o)
	}
	o = mustParse(t, "bench", "-buffer-timeout", "0", "-segment-size", "32768", "-network-memory", "128MiB", "-transport", "raw-quic,tcp")
	if o.bufferTimeout.d != exchange.FlushEveryRecord || o.segmentSize.n != 32768 || o.networkMemory.n != 128<<20 {
		t.Errorf("values: %+v", o)
	}
	if got := o.transports.String(); got != "raw-quic,tcp" {
		t.Errorf("transport order %q", got)
	}
	o = mustParse(t, "bench", "-buffer-timeout", "-1")
	if o.bufferTimeout.d != exchange.FlushFullBuffersOnly {
		t.Errorf("-1: %v", o.bufferTimeout.d)
	}
	for in, want := range map[string]int64{"4096": 4096, "4KiB": 4096, "4K": 4096, "4k": 4096, "4KB": 4000, "1.5MiB": 3 << 19, "2GiB": 2 << 30} {
		n, err := parseSize(in)
		if err != nil || n != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	if s := formatSize(32 << 10); s != "32KiB" {
		t.Errorf("formatSize %q", s)
	}
	c := mustParse(t, "bench", "-buffer-timeout", "0").resultsConfig()
	if c.BufferTimeout != "0" || c.Channels != 64 || c.Verification == "" || c.Verify != "full" {
		t.Errorf("config %+v", c)
	}
	c = mustParse(t, "bench", "-verify", "sampled").resultsConfig()
	if c.Verify != "sampled" || !strings.HasPrefix(c.Verification, "sampled:") {
		t.Errorf("-verify sampled: config %+v", c)
	}
}

func TestPresetsAndOverrides(t *testing.T) {
	o := mustParse(t, "bench", "-preset", "throughput-100")
	if o.writers != 4 || o.readers != 100 || o.recordSize != 8 || o.bufferTimeout.d != 100*time.Millisecond {
		t.Errorf("throughput-100: %+v", o)
	}
	o = mustParse(t, "bench", "-preset", "throughput-1000-1ms")
	if o.readers != 1000 || o.recordSize != 8 || o.bufferTimeout.d != time.Millisecond || o.networkMemory.n < 500<<20 {
		t.Errorf("throughput-1000-1ms: %+v", o)
	}
	o = mustParse(t, "bench", "-preset", "broadcast")
	if o.selector != "broadcast" || o.readers != 100 {
		t.Errorf("broadcast: %+v", o)
	}
	o = mustParse(t, "bench", "-preset", "latency")
	if o.writers != 1 || o.readers != 1 || o.bufferTimeout.d != exchange.FlushEveryRecord || o.recordRate != 10000 {
		t.Errorf("latency: %+v", o)
	}
	// Explicit flags win, before or after -preset.
	o = mustParse(t, "bench", "-readers", "7", "-preset", "throughput-100", "-record-size", "100")
	if o.readers != 7 || o.recordSize != 100 || o.writers != 4 {
		t.Errorf("override: %+v", o)
	}
	o = mustParse(t, "bench", "-preset", "latency", "-record-rate", "0", "-buffer-timeout", "5ms")
	if o.recordRate != 0 || o.bufferTimeout.d != 5*time.Millisecond || o.writers != 1 {
		t.Errorf("override latency: %+v", o)
	}
	// The preset's network memory applies unless given; a too small one
	// given explicitly is an error naming the need.
	if _, err := parse("bench", []string{"-preset", "throughput-1000-1ms", "-network-memory", "64MiB"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "500MiB") {
		t.Errorf("explicit small memory: %v", err)
	}
	if c := mustParse(t, "bench", "-preset", "latency").resultsConfig(); c.Preset != "latency" || c.RecordRate != 10000 || c.Writers != 1 || c.Batch != 1 {
		t.Errorf("resolved config: %+v", c)
	}
}

// TestBatchResolved: the JSON config holds the batch the writers use:
// the default or -batch unpaced, 1 when paced (-record-rate, -load).
func TestBatchResolved(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-preset", "throughput-100"}, workload.DefaultBatch},
		{[]string{"-batch", "1"}, 1},
		{[]string{"-batch", "256"}, 256},
		{[]string{"-batch", "256", "-record-rate", "1000"}, 1},
		{[]string{"-record-size", "32768"}, 8},
		{[]string{"-record-size", "1048576", "-batch", "100"}, 1},
		{[]string{"-rate", "100mbit", "-load", "0.5", "-record-size", "64"}, 1},
	} {
		if c := mustParse(t, append([]string{"bench"}, tc.args...)...).resultsConfig(); c.Batch != tc.want {
			t.Errorf("%v: batch %d, want %d", tc.args, c.Batch, tc.want)
		}
	}
	if c := mustParse(t, "consume", "-connect", "127.0.0.1:1").resultsConfig(); c.Batch != 0 {
		t.Errorf("consume: batch %d, want none", c.Batch)
	}
}

func TestServeDurationAloneMeansUnlimited(t *testing.T) {
	o := mustParse(t, "serve", "-duration", "3s")
	if o.records != 0 {
		t.Errorf("records %d", o.records)
	}
	o = mustParse(t, "serve")
	if o.records != 1_000_000 {
		t.Errorf("default records %d", o.records)
	}
}

func TestBackoffForWait(t *testing.T) {
	for _, w := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 30 * time.Second, 5 * time.Minute} {
		ib, mb := backoffFor(w)
		total := retryTotal(ib, mb)
		if total < min(w, 100*time.Millisecond) || total < w && w > 100*time.Millisecond {
			t.Errorf("wait %v: schedule %v..%v retries for only %v", w, ib, mb, total)
		}
		if total > w*3/2+100*time.Millisecond {
			t.Errorf("wait %v: schedule %v..%v retries for %v", w, ib, mb, total)
		}
	}
}

func TestConsumeListen(t *testing.T) {
	for connect, want := range map[string]string{
		"127.0.0.1:9000": "127.0.0.1:0", "localhost:9000": "127.0.0.1:0", "[::1]:9000": "[::1]:0", "10.1.2.3:9000": ":0",
	} {
		if got := consumeListen(&options{connect: connect}); got != want {
			t.Errorf("%s: %s, want %s", connect, got, want)
		}
	}
}

func TestSplitRecords(t *testing.T) {
	got := splitRecords(10, 4)
	if got[0] != 3 || got[1] != 3 || got[2] != 2 || got[3] != 2 {
		t.Errorf("%v", got)
	}
	if got := splitRecords(2, 3); got[2] != -1 {
		t.Errorf("%v", got)
	}
	if got := splitRecords(0, 2); got[0] != 0 {
		t.Errorf("%v", got)
	}
}
