package rpc

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

type benchMsg struct {
	Seq int
	Pad string
}

// BenchmarkRoundTrip measures an RPC round trip (a 64-byte-ish request
// and response through the endpoint's main goroutine) over loopback,
// beside a raw ping-pong of the same frame sizes on the same transport
// (one TLS stream: TCP+TLS, or one quic-go stream), in the same run. It
// reports p50/p99 latency and sequential calls/s for both, their ratio,
// and calls/s with 16 concurrent callers.
//
//	go test -run X -bench RoundTrip -benchtime 20000x ./rpc
func BenchmarkRoundTrip(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) {
			server, client := pair(b, tr, nil)
			startEndpoint(b, server, EndpointConfig{ID: "echo"}, func(e *Endpoint) {
				_ = Register(e, "echo", func(_ context.Context, m benchMsg) (benchMsg, error) { return m, nil })
			})
			g := connect(b, client, server, "echo")
			ctx := context.Background()
			req := benchMsg{Pad: "0123456789012345678901234567890123456789"}
			call := func() error { _, err := Call[benchMsg, benchMsg](ctx, g, "echo", req); return err }
			// The raw baseline moves frames of the RPC's size.
			frame := appendFrame(nil, &message{version: ProtocolVersion, kind: kindCall, endpoint: "echo", method: "echo", payload: []byte(`{"Seq":0,"Pad":"0123456789012345678901234567890123456789"}`)})
			ping, closeRaw := rawPingPong(b, tr, server, frame)
			defer closeRaw()
			if err := call(); err != nil { // warm up: connection dialed
				b.Fatal(err)
			}
			if err := ping(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			rpcLat := measure(b, b.N, call)
			rawLat := measure(b, b.N, ping)
			parallel := callsPerSecond(b, b.N, 16, call)
			b.StopTimer()
			report := func(name string, lat []time.Duration) (p50 float64) {
				p50 = float64(percentile(lat, 0.50).Microseconds())
				b.ReportMetric(p50, name+"-p50-µs")
				b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), name+"-p99-µs")
				b.ReportMetric(float64(len(lat))/sum(lat).Seconds(), name+"-calls/s")
				return p50
			}
			rp50, wp50 := report("rpc", rpcLat), report("raw", rawLat)
			if wp50 > 0 {
				b.ReportMetric(rp50/wp50, "rpc/raw-p50")
			}
			b.ReportMetric(sum(rawLat).Seconds()/sum(rpcLat).Seconds(), "rpc/raw-calls/s")
			b.ReportMetric(parallel, "rpc-calls/s-16callers")
		})
	}
}

func measure(b *testing.B, n int, f func() error) []time.Duration {
	lat := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		if err := f(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	return lat
}

func callsPerSecond(b *testing.B, n, callers int, f func() error) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < n; i += callers {
				if err := f(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func sum(d []time.Duration) (t time.Duration) {
	for _, x := range d {
		t += x
	}
	return t
}

// rawPingPong starts an echo server with the service's TLS material on
// transport and returns a ping that sends frame and reads it back on one
// long-lived connection (TCP) or stream (QUIC).
func rawPingPong(b *testing.B, transport string, s *Service, frame []byte) (ping func() error, closeAll func()) {
	srvTLS, cliTLS := s.tls.serverTLS(), s.tls.clientTLS("127.0.0.1")
	echo := func(rw io.ReadWriter) {
		buf := make([]byte, len(frame))
		for {
			if _, err := io.ReadFull(rw, buf); err != nil {
				return
			}
			if _, err := rw.Write(buf); err != nil {
				return
			}
		}
	}
	var conn io.ReadWriter
	var closers []func()
	switch transport {
	case TCP:
		ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			echo(c)
		}()
		c, err := tls.Dial("tcp", ln.Addr().String(), cliTLS)
		if err != nil {
			b.Fatal(err)
		}
		conn = c
		closers = append(closers, func() { c.Close() }, func() { ln.Close() })
	case QUIC:
		ln, err := quic.ListenAddr("127.0.0.1:0", srvTLS, s.QUICConfig(true))
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			str, err := c.AcceptStream(context.Background())
			if err != nil {
				return
			}
			echo(str)
		}()
		c, err := quic.DialAddr(context.Background(), ln.Addr().String(), cliTLS, s.QUICConfig(false))
		if err != nil {
			b.Fatal(err)
		}
		str, err := c.OpenStreamSync(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		conn = str
		closers = append(closers, func() { c.CloseWithError(0, "") }, func() { ln.Close() })
	}
	buf := make([]byte, len(frame))
	ping = func() error {
		if _, err := conn.Write(frame); err != nil {
			return err
		}
		_, err := io.ReadFull(conn, buf)
		if err == nil && binary.BigEndian.Uint32(buf) != binary.BigEndian.Uint32(frame) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return ping, func() {
		for _, c := range closers {
			c()
		}
	}
}
