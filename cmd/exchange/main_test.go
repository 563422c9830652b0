package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qexchange/qexchange/bench/results"
)

// The binary is built once, without -race (the processes are under test,
// not the build mode), into a temporary directory.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "exchange-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "exchange")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a started exchange process.
type proc struct {
	cmd    *exec.Cmd
	stdout *bytes.Buffer
	stderr *bytes.Buffer
	done   chan struct{}
	err    error
	mu     sync.Mutex
	lines  chan string // stdout lines (serve: the listening line)
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan struct{}), lines: make(chan string, 16)}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Stderr = &lockedWriter{w: p.stderr, mu: &p.mu}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		<-copied
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) output() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		o, e := p.output()
		t.Fatalf("%v did not exit within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Args[1:3], d, o, e)
	}
	return exitCode(p.err)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// serve starts a producer on a free port and returns it with its address.
func serve(t *testing.T, transport string, args ...string) (*proc, string) {
	t.Helper()
	p := start(t, append([]string{"serve", "-transport", transport, "-listen", "127.0.0.1:0"}, args...)...)
	select {
	case line := <-p.lines:
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "listening" || f[1] != transport {
			t.Fatalf("unexpected first line %q", line)
		}
		return p, f[2]
	case <-p.done:
		o, e := p.output()
		t.Fatalf("serve exited: %v\n%s\n%s", p.err, o, e)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not print its address")
	}
	return nil, ""
}

func readReport(t *testing.T, path string) *results.Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := results.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// freePort returns a port that was free for both TCP and UDP a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

var transports = []string{"tcp", "quic"}

// TestServeConsumeMillion moves 10^6 verified records between two
// processes over each transport.
func TestServeConsumeMillion(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			job := "million-" + tr
			srv, addr := serve(t, tr, "-job", job, "-records", "1000000", "-writers", "4", "-readers", "16", "-buffer-timeout", "50ms")
			path := filepath.Join(t.TempDir(), "consume.json")
			c := start(t, "consume", "-transport", tr, "-connect", addr, "-job", job, "-writers", "4", "-readers", "16", "-json", path)
			if code := c.wait(t, 60*time.Second); code != 0 {
				o, e := c.output()
				t.Fatalf("consume exit %d\n%s\n%s", code, o, e)
			}
			if code := srv.wait(t, 10*time.Second); code != 0 {
				o, e := srv.output()
				t.Fatalf("serve exit %d\n%s\n%s", code, o, e)
			}
			rep := readReport(t, path)
			r := rep.Results[0]
			if r.Transport != tr || r.Records != 1_000_000 || r.Sent != 1_000_000 || r.Lost+r.Duplicated+r.Reordered+r.ChecksumFailures+r.Invalid != 0 {
				t.Fatalf("result %+v", r)
			}
			if rep.Config.RecordSize != 64 || rep.Config.Job != job || rep.Config.BufferTimeout != "50ms" || r.LatencyUS.Samples == 0 {
				t.Fatalf("config %+v latency %+v", rep.Config, r.LatencyUS)
			}
			so, _ := srv.output()
			if !strings.Contains(so, "served 1000000 records") {
				t.Errorf("serve output %q", so)
			}
			t.Logf("%s: %.0f rec/ms, p99 %.0f µs", tr, r.RecordsPerMs, r.LatencyUS.P99)
		})
	}
}

// TestProducerKilledMidStream: the consumer exits non-zero within 2 s of
// the producer's death, naming the producer's address.
func TestProducerKilledMidStream(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			code, took, e, addr := killMidStream(t, tr, "killed-"+tr, "serve")
			if code == 0 {
				t.Fatalf("consume exited 0 after its producer died\n%s", e)
			}
			if took > 2*time.Second {
				t.Errorf("consume took %v to notice the dead producer (want < 2s)", took)
			}
			if !strings.Contains(e, addr) {
				t.Errorf("message does not name the producer %s: %q", addr, e)
			}
			t.Logf("%s: exit %d after %v: %s", tr, code, took.Round(time.Millisecond), strings.TrimSpace(e))
		})
	}
}

// TestConsumerBeforeProducer: a consumer started first waits (retrying)
// and succeeds once the producer comes up.
func TestConsumerBeforeProducer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			job := "early-" + tr
			addr := freePort(t)
			c := start(t, "consume", "-transport", tr, "-connect", addr, "-job", job, "-wait", "20s", "-writers", "2", "-readers", "4")
			time.Sleep(1500 * time.Millisecond)
			select {
			case <-c.done:
				o, e := c.output()
				t.Fatalf("consume gave up before the producer came: %v\n%s\n%s", c.err, o, e)
			default:
			}
			srv := start(t, "serve", "-transport", tr, "-listen", addr, "-job", job, "-records", "100000", "-writers", "2", "-readers", "4")
			if code := c.wait(t, 30*time.Second); code != 0 {
				o, e := c.output()
				so, se := srv.output()
				t.Fatalf("consume exit %d\n%s\n%s\nserve:\n%s\n%s", code, o, e, so, se)
			}
			if code := srv.wait(t, 10*time.Second); code != 0 {
				t.Fatalf("serve exit %d", code)
			}
			o, _ := c.output()
			if !strings.Contains(o, "100000") {
				t.Errorf("consume output:\n%s", o)
			}
		})
	}
}

// TestNoProducer: a consumer whose producer never comes exits 1 after
// about -wait, naming the address.
func TestNoProducer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			addr := freePort(t)
			began := time.Now()
			c := start(t, "consume", "-transport", tr, "-connect", addr, "-job", "nobody", "-wait", "1s")
			code := c.wait(t, 15*time.Second)
			_, e := c.output()
			if code != 1 || !strings.Contains(e, addr) || !strings.Contains(e, "no producer") {
				t.Fatalf("exit %d, stderr %q", code, e)
			}
			if took := time.Since(began); took < time.Second || took > 8*time.Second {
				t.Errorf("gave up after %v with -wait 1s", took)
			}
		})
	}
}

// TestMismatchedConsumerFails: a consumer configured for a different
// shape than the producer fails instead of reporting success.
func TestMismatchedConsumerFails(t *testing.T) {
	srv, addr := serve(t, "tcp", "-job", "shape", "-records", "10000", "-writers", "2", "-readers", "2")
	_ = srv
	c := start(t, "consume", "-transport", "tcp", "-connect", addr, "-job", "shape", "-writers", "1", "-readers", "2", "-wait", "2s")
	code := c.wait(t, 15*time.Second)
	_, e := c.output()
	if code != 1 || !strings.Contains(e, "does not match") {
		t.Fatalf("exit %d, stderr %q", code, e)
	}
}

// TestBenchBinaryQuick: the binary's bench runs two rounds and writes
// JSON with every round and the summary; wrong flags exit 2 with one line
// before any run.
func TestBenchBinaryQuick(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.json")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary(t), "bench", "-transport", "tcp,raw-tcp", "-duration", "300ms", "-repeat", "2", "-calibrate", "100ms", "-json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rep := readReport(t, path)
	if len(rep.Results) != 2 || rep.Results[0].Records == 0 || rep.Results[1].Bytes == 0 {
		t.Fatalf("%+v", rep.Results)
	}
	if rep.SchemaVersion != results.SchemaVersion || len(rep.Rounds) != 2 || rep.Summary == nil || len(rep.Summary.Ratios) != 1 || rep.Summary.Ratios[0].Name != "tcp/raw-tcp" {
		t.Fatalf("schema %d, %d rounds, summary %+v", rep.SchemaVersion, len(rep.Rounds), rep.Summary)
	}
	if !strings.Contains(string(out), "tcp/raw-tcp") || !strings.Contains(string(out), "noise floor") {
		t.Errorf("table:\n%s", out)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-writers", "0"}, {"-repeat", "0"}, {"-loss", "1%", "-seeds", "x"}, {"-loss", "1%", "-seeds", "21"},
		{"-connections", "0"}, {"-connections", "65"}, {"-rate", "10mbit", "-sweep", "load=0.5,2"},
		{"-qlog", filepath.Join(file, "q")},
	} {
		cmd := exec.CommandContext(ctx, binary(t), append([]string{"bench"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if code := exitCode(cmd.Run()); code != 2 || strings.Count(stderr.String(), "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
}
