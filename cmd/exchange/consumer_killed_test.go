package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// killMidStream runs serve and consume on tr, kills victim ("serve" or
// "consume") with SIGKILL while records flow, and returns how the other
// one ended: its exit code, the time it took after the kill, its stderr,
// and the producer's address.
func killMidStream(t *testing.T, tr, job, victim string) (code int, took time.Duration, stderr, addr string) {
	t.Helper()
	srv, addr := serve(t, tr, "-job", job, "-records", "0", "-duration", "5m", "-record-rate", "20000")
	c := start(t, "consume", "-transport", tr, "-connect", addr, "-job", job)
	killed, survivor, name := c, srv, "serve"
	if victim == "serve" {
		killed, survivor, name = srv, c, "consume"
	}
	time.Sleep(time.Second) // mid-stream: records are flowing
	select {
	case <-survivor.done:
		o, e := survivor.output()
		t.Fatalf("%s exited before the kill: %v\n%s\n%s", name, survivor.err, o, e)
	default:
	}
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	code = survivor.wait(t, 10*time.Second)
	took = time.Since(at)
	_, stderr = survivor.output()
	return code, took, stderr, addr
}

// TestConsumerKilledMidStream: serve exits non-zero within 2 s of its
// consumer's death on tcp (the kernel closes the dead process's
// connections) and within the idle timeout + 2 s on quic (a killed QUIC
// peer is silent; the CLI's -idle-timeout is 1 s), saying which consumer
// went away.
func TestConsumerKilledMidStream(t *testing.T) {
	bound := map[string]time.Duration{"tcp": 2 * time.Second, "quic": time.Second + 2*time.Second}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			code, took, e, _ := killMidStream(t, tr, "consumer-killed-"+tr, "consume")
			if code == 0 {
				t.Fatalf("serve exited 0 after its consumer died\n%s", e)
			}
			if took > bound[tr] {
				t.Errorf("serve took %v to notice the dead consumer (want < %v)", took, bound[tr])
			}
			if !strings.Contains(e, "consumer 127.0.0.1:") || !strings.Contains(e, "went away") {
				t.Errorf("message does not name the consumer that went away: %q", e)
			}
			t.Logf("%s: exit %d after %v: %s", tr, code, took.Round(time.Millisecond), strings.TrimSpace(e))
		})
	}
}
