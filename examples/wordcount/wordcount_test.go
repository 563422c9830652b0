package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test builds the command and runs a coordinator and 3 worker
// processes over loopback: a clean run must match the counts of
// `tr -s '[:space:]' '\n' | sort | uniq -c`, and a worker killed mid-job
// must fail the job within 2 s with a message naming it, with every
// process exiting.

var build struct {
	once sync.Once
	bin  string
	err  error
}

func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "wordcount-test")
		if err != nil {
			build.err = err
			return
		}
		build.bin = filepath.Join(dir, "wordcount")
		args := []string{"build", "-o", build.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, ".")...).CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if build.bin != "" {
		os.RemoveAll(filepath.Dir(build.bin))
	}
	os.Exit(code)
}

// writeInput writes a deterministic text of words of a small vocabulary
// with every kind of [:space:] between them.
func writeInput(t *testing.T, path string, words int) {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := []string{"the", "a", "Über", "naïve", "x-y", "3.14", "quic", "tcp", "Flink", "flink", "rpc"}
	for i := range 300 {
		vocab = append(vocab, "w"+strconv.Itoa(i))
	}
	seps := []string{" ", "  ", "\t", "\n", "\r\n", " \v", "\f"}
	var b strings.Builder
	for i := range words {
		if i > 0 {
			b.WriteString(seps[r.IntN(len(seps))])
		}
		b.WriteString(vocab[min(r.IntN(len(vocab)), r.IntN(len(vocab)))]) // skewed
	}
	b.WriteString("\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// uniqCounts runs the shell pipeline the job must agree with.
func uniqCounts(t *testing.T, input string) map[string]int {
	t.Helper()
	for _, tool := range []string{"sh", "tr", "sort", "uniq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not available: %v", tool, err)
		}
	}
	cmd := exec.Command("sh", "-c", `tr -s '[:space:]' '\n' < "$1" | sort | uniq -c`, "sh", input)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return parseCounts(t, out, true)
}

// parseCounts reads "count word" lines (uniq -c pads the count).
func parseCounts(t *testing.T, data []byte, uniq bool) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		if uniq {
			line = strings.TrimLeft(line, " ")
		}
		n, word, ok := strings.Cut(line, " ")
		if !ok || word == "" {
			continue // tr leaves no empty lines here; skip the last one
		}
		c, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("bad count line %q", line)
		}
		if _, dup := m[word]; dup {
			t.Fatalf("word %q counted twice", word)
		}
		m[word] = c
	}
	return m
}

// proc is a started process whose stdout lines are watched.
type proc struct {
	name  string
	cmd   *exec.Cmd
	lines chan string // stdout, closed at EOF
	mu    sync.Mutex
	out   strings.Builder // stdout and stderr
	done  chan struct{}
	err   error
}

func start(t *testing.T, ctx context.Context, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, lines: make(chan string, 100), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, binary(t), args...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.out.Write(b)
	})
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for it
			}
		}
		close(p.lines)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if strings.Contains(p.output(), "DATA RACE") {
			t.Errorf("%s reported a data race", p.name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitLine returns the first stdout line containing s.
func (p *proc) waitLine(t *testing.T, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s exited before printing %q", p.name, s)
			}
			if strings.Contains(line, s) {
				return line
			}
		case <-deadline:
			t.Fatalf("%s printed no %q within %v", p.name, s, timeout)
		}
	}
}

func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", p.name, timeout)
		return nil
	}
}

// job starts a coordinator and 3 workers.
func job(t *testing.T, transport string, input, output string, extra ...string) (coord *proc, workers []*proc) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	t.Cleanup(cancel)
	args := append([]string{"coordinator", "-transport", transport, "-input", input, "-output", output, "-workers", "3"}, extra...)
	coord = start(t, ctx, "coordinator", args...)
	line := coord.waitLine(t, "coordinator listening", 10*time.Second)
	addr := line[strings.LastIndex(line, " ")+1:]
	for i := 1; i <= 3; i++ {
		id := "w" + strconv.Itoa(i)
		workers = append(workers, start(t, ctx, id, "worker", "-id", id, "-transport", transport, "-coordinator", addr))
	}
	return coord, workers
}

func TestWordCount(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "input.txt")
	writeInput(t, input, 30_000)
	want := uniqCounts(t, input)
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			coord, workers := job(t, transport, input, out)
			if err := coord.wait(t, 20*time.Second); err != nil {
				t.Fatalf("coordinator: %v", err)
			}
			for _, w := range workers {
				if err := w.wait(t, 5*time.Second); err != nil {
					t.Errorf("worker %s: %v", w.name, err)
				}
			}
			got := map[string]int{}
			parts, _ := filepath.Glob(filepath.Join(out, "part-*"))
			if len(parts) != 3 {
				t.Fatalf("%d part files, want 3", len(parts))
			}
			for _, p := range parts {
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				for w, c := range parseCounts(t, data, false) {
					if _, dup := got[w]; dup {
						t.Fatalf("word %q in two part files", w)
					}
					got[w] = c
				}
			}
			if len(got) != len(want) {
				t.Errorf("%d distinct words, uniq -c has %d", len(got), len(want))
			}
			for w, c := range want {
				if got[w] != c {
					t.Errorf("%q: %d, uniq -c says %d", w, got[w], c)
				}
			}
		})
	}
}

func TestWordCountWorkerKilled(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "input.txt")
	writeInput(t, input, 30_000) // 10,000 words per source at 2,000/s: 5 s
	for _, transport := range []string{"tcp", "quic"} {
		t.Run(transport, func(t *testing.T) {
			coord, workers := job(t, transport, input, filepath.Join(t.TempDir(), "out"), "-throttle", "2000")
			coord.waitLine(t, "deployed", 10*time.Second)
			victim := workers[1]
			if err := victim.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			line := coord.waitLine(t, "job failing", 5*time.Second)
			if d := time.Since(killed); d > 2*time.Second {
				t.Errorf("failure detected %v after the kill, want within 2s", d)
			}
			if !strings.Contains(line, "worker "+victim.name) || !strings.Contains(line, "heartbeat") {
				t.Errorf("failure %q does not name worker %s and its heartbeats", line, victim.name)
			}
			if err := coord.wait(t, 5*time.Second); err == nil {
				t.Error("coordinator exited 0 after a worker was killed")
			}
			if !bytes.Contains([]byte(coord.output()), []byte("job FAILED")) {
				t.Error("coordinator did not report the failure")
			}
			for _, w := range workers {
				if w != victim {
					w.wait(t, 5*time.Second) // no process hangs
				}
			}
		})
	}
}
