package raw

import (
	"context"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange/tlsconf"
)

func check(t *testing.T, r *Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if r.Segments == 0 || r.Bytes != r.Segments*32<<10 {
		t.Fatalf("segments %d bytes %d", r.Segments, r.Bytes)
	}
	if r.Lost+r.Duplicated+r.Reordered != 0 {
		t.Fatalf("anomalies: %+v", r)
	}
	if r.Hist.Count() != uint64(r.Segments) || r.Hist.Quantile(0.5) <= 0 {
		t.Fatalf("latency: %d samples, p50 %d", r.Hist.Count(), r.Hist.Quantile(0.5))
	}
	t.Logf("%.0f MB/s, p50 %v", float64(r.Bytes)/r.Seconds/1e6, time.Duration(r.Hist.Quantile(0.5)))
}

func TestTCP(t *testing.T) {
	r, err := TCP(context.Background(), Options{SegmentSize: 32 << 10, Duration: 300 * time.Millisecond}, TCPOptions{KeepAlive: 15 * time.Second})
	check(t, r, err)
}

func TestQUIC(t *testing.T) {
	cert, pin, err := tlsconf.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r, err := QUIC(context.Background(), Options{SegmentSize: 32 << 10, Duration: 300 * time.Millisecond}, QUICOptions{Certificate: cert, Pin: pin, UDPBufferSize: 7_500_000})
	check(t, r, err)
}

func TestQUICWrongPinFails(t *testing.T) {
	cert, _, err := tlsconf.SelfSigned("localhost")
	if err != nil {
		t.Fatal(err)
	}
	_, err = QUIC(context.Background(), Options{SegmentSize: 32 << 10, Duration: 100 * time.Millisecond}, QUICOptions{Certificate: cert, Pin: [32]byte{1}})
	if err == nil {
		t.Fatal("handshake with an unpinned certificate succeeded")
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := TCP(ctx, Options{SegmentSize: 32 << 10, Duration: time.Hour}, TCPOptions{})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancel: err %v after %v", err, time.Since(start))
	}
}
