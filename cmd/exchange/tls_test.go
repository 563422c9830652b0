package main

import (
	"strings"
	"testing"
	"time"
)

// TestTCPTLS: on tcp the TLS flags work (they were silently ignored): a
// consumer with the producer's secret reads everything; one with another
// secret, or none, fails at once naming the producer and the cause.
func TestTCPTLS(t *testing.T) {
	srv, addr := serve(t, "tcp", "-job", "tls", "-secret", "s3cret", "-records", "20000", "-writers", "1", "-readers", "2")
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"-secret", "wrong"}, "not pinned"},
		{nil, "requires TLS"},
	} {
		began := time.Now()
		c := start(t, append([]string{"consume", "-transport", "tcp", "-connect", addr, "-job", "tls", "-writers", "1", "-readers", "2", "-wait", "20s"}, bad.args...)...)
		code := c.wait(t, 15*time.Second)
		took := time.Since(began)
		_, e := c.output()
		t.Logf("%v: exit %d after %v: %s", bad.args, code, took.Round(time.Millisecond), strings.TrimSpace(e))
		if code != 1 || !strings.Contains(e, addr) || !strings.Contains(e, bad.want) {
			t.Fatalf("consume %v: exit %d, stderr %q; want 1 and a message naming %s and %q", bad.args, code, e, addr, bad.want)
		}
		if took > 5*time.Second { // a process start included; retried it would take -wait
			t.Errorf("consume %v took %v to fail", bad.args, took)
		}
	}
	c := start(t, "consume", "-transport", "tcp", "-connect", addr, "-job", "tls", "-secret", "s3cret", "-writers", "1", "-readers", "2")
	if code := c.wait(t, 30*time.Second); code != 0 {
		o, e := c.output()
		t.Fatalf("consume exit %d\n%s\n%s", code, o, e)
	}
	if o, _ := c.output(); !strings.Contains(o, "20000") {
		t.Errorf("consume output:\n%s", o)
	}
	if code := srv.wait(t, 15*time.Second); code != 0 {
		o, e := srv.output()
		t.Fatalf("serve exit %d\n%s\n%s", code, o, e)
	}
	if _, e := srv.output(); strings.Contains(e, "WARNING") {
		t.Errorf("serve with -secret warned: %s", e)
	}
}

// TestTLSFileUnreadableExit2: a TLS file that cannot be read is a usage
// error (exit 2) before anything listens.
func TestTLSFileUnreadableExit2(t *testing.T) {
	p := start(t, "serve", "-transport", "tcp", "-listen", "127.0.0.1:0", "-tls-cert", "/nonexistent/x.pem", "-tls-key", "/nonexistent/k.pem", "-tls-ca", "/nonexistent/ca.pem")
	code := p.wait(t, 10*time.Second)
	o, e := p.output()
	if code != 2 || strings.Contains(o, "listening") || !strings.Contains(e, "/nonexistent/x.pem") {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, o, e)
	}
}

// TestDefaultSecretWarns: quic without -secret derives its certificate
// from the public job name: serve and consume each warn once.
func TestDefaultSecretWarns(t *testing.T) {
	srv, addr := serve(t, "quic", "-job", "warned", "-records", "1000", "-writers", "1", "-readers", "1")
	c := start(t, "consume", "-transport", "quic", "-connect", addr, "-job", "warned", "-writers", "1", "-readers", "1")
	if code := c.wait(t, 30*time.Second); code != 0 {
		o, e := c.output()
		t.Fatalf("consume exit %d\n%s\n%s", code, o, e)
	}
	if code := srv.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("serve exit %d", code)
	}
	for name, p := range map[string]*proc{"serve": srv, "consume": c} {
		if _, e := p.output(); strings.Count(e, "WARNING: the TLS certificate is derived from the job name") != 1 {
			t.Errorf("%s stderr: want one warning about the default secret:\n%s", name, e)
		}
	}
}
