package main

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConsumerKilledMidStream: serve exits non-zero within 2 s of its
// consumer's death on tcp (the kernel closes the dead process's
// connections), saying which consumer went away. On quic a killed
// consumer is silent: serve notices it at the idle timeout (30 s by
// default), which exchange's TestConsumerLost checks with a short one.
func TestConsumerKilledMidStream(t *testing.T) {
	const tr = "tcp"
	job := "consumer-killed-" + tr
	srv, addr := serve(t, tr, "-job", job, "-records", "0", "-duration", "5m", "-record-rate", "20000")
	c := start(t, "consume", "-transport", tr, "-connect", addr, "-job", job)
	time.Sleep(time.Second) // mid-stream: records are flowing
	select {
	case <-srv.done:
		o, e := srv.output()
		t.Fatalf("serve exited before the kill: %v\n%s\n%s", srv.err, o, e)
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	code := srv.wait(t, 10*time.Second)
	took := time.Since(killed)
	_, e := srv.output()
	if code == 0 {
		t.Fatalf("serve exited 0 after its consumer died\n%s", e)
	}
	if took > 2*time.Second {
		t.Errorf("serve took %v to notice the dead consumer (want < 2s)", took)
	}
	if !strings.Contains(e, "consumer 127.0.0.1:") || !strings.Contains(e, "went away") {
		t.Errorf("message does not name the consumer that went away: %q", e)
	}
	t.Logf("%s: exit %d after %v: %s", tr, code, took.Round(time.Millisecond), strings.TrimSpace(e))
}
