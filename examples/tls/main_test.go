package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The example's claim on both transports: the trusted consumer reads all
// 1,000 records; the untrusted one reads none and gets an
// *exchange.AuthError (run checks both and fails otherwise).
func TestMutualTLSOnBothTransports(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"tcp: trusted consumer read 1000", "tcp: untrusted consumer read 0", "quic: trusted consumer read 1000", "quic: untrusted consumer read 0"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
}
