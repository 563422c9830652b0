package main

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two real processes: the consumer receives every record in order, and
// the producer exits only after the consumer acknowledged them.
func TestTwoProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "two-process")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	prod := exec.CommandContext(ctx, bin, "-role", "producer", "-records", "200000")
	stdout, err := prod.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var prodErr strings.Builder
	prod.Stderr = &prodErr
	if err := prod.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "listening ") {
		first := lines.Text()
		_ = prod.Process.Kill()
		_ = prod.Wait() // exec copies stderr on its own goroutine until Wait
		t.Fatalf("producer's first line %q, stderr %s", first, prodErr.String())
	}
	addr := strings.TrimPrefix(lines.Text(), "listening ")
	cons, err := exec.CommandContext(ctx, bin, "-role", "consumer", "-connect", addr).CombinedOutput()
	if err != nil || !strings.Contains(string(cons), "received 200000 in order") {
		t.Fatalf("consumer: %v\n%s", err, cons)
	}
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
	}
	if err := prod.Wait(); err != nil || !strings.Contains(rest.String(), "delivered 200000") {
		t.Fatalf("producer: %v\n%s\n%s", err, rest.String(), prodErr.String())
	}
}
