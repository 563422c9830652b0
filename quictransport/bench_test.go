package quictransport_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/quictransport"
)

const (
	benchSegment  = 32 << 10
	benchChannels = 64
)

// rawMBps is the raw sub-benchmark's last throughput, for the ratio.
var rawMBps float64

// BenchmarkThroughput moves 32 KiB buffers over loopback: "raw" is one
// quic-go stream carrying 32 KiB writes with the transport's TLS and QUIC
// settings (the limit); "transport" is the exchange over this transport:
// one partition of 64 subpartitions read by one gate of 64 remote
// channels (64 streams), records filling 32 KiB segments,
// FlushFullBuffersOnly. One op is one 32 KiB buffer in both. Run both in
// one invocation to get the ratio:
//
//	go test -run '^$' -bench Throughput -benchtime 2s ./quictransport/
func BenchmarkThroughput(b *testing.B) {
	b.Run("raw", benchRaw)
	b.Run("transport", benchTransport)
}

func benchRaw(b *testing.B) {
	srvTLS, cliTLS, srvQ, cliQ, err := quictransport.RawConfigs(testConfig(b), benchSegment)
	if err != nil {
		b.Fatal(err)
	}
	listen := func() *quic.Transport {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		_ = pc.(*net.UDPConn).SetReadBuffer(quictransport.DefaultUDPBufferSize)
		_ = pc.(*net.UDPConn).SetWriteBuffer(quictransport.DefaultUDPBufferSize)
		return &quic.Transport{Conn: pc}
	}
	st, ct := listen(), listen()
	defer func() { st.Close(); ct.Close(); st.Conn.Close(); ct.Conn.Close() }()
	ln, err := st.Listen(srvTLS, srvQ)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	total := int64(b.N) * benchSegment
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept(ctx)
		if err != nil {
			done <- err
			return
		}
		str, err := c.AcceptStream(ctx)
		if err != nil {
			done <- err
			return
		}
		buf := make([]byte, benchSegment)
		var n int64
		for n < total {
			k, err := str.Read(buf)
			n += int64(k)
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
		<-c.Context().Done()
	}()
	conn, err := ct.Dial(ctx, st.Conn.LocalAddr(), cliTLS, cliQ)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchSegment)
	b.SetBytes(benchSegment)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := str.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	b.StopTimer()
	rawMBps = float64(total) / el.Seconds() / 1e6
}

func benchTransport(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	prod, cons := newEnv(b, 0, benchSegment), newEnv(b, 0, benchSegment)
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: benchChannels, BufferTimeout: exchange.FlushFullBuffersOnly})
	if err != nil {
		b.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, benchChannels)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prod.Addr()}
	}
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	defer p.Release()
	// Warm-up: every channel connected and delivering.
	rec := make([]byte, benchSegment-4) // 4-byte length prefix: one record fills one segment
	for i := range benchChannels {
		if err := p.EmitTo(ctx, i, rec); err != nil {
			b.Fatal(err)
		}
	}
	for range benchChannels {
		if _, err := g.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchSegment)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for i := range b.N {
			if err := p.EmitTo(ctx, i%benchChannels, rec); err != nil {
				errc <- err
				return
			}
		}
		errc <- p.Finish(ctx)
	}()
	n := 0
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		if e.Event == nil {
			n++
		}
	}
	el := time.Since(start)
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if n != b.N {
		b.Fatalf("received %d records, want %d", n, b.N)
	}
	mbps := float64(b.N) * benchSegment / el.Seconds() / 1e6
	if rawMBps > 0 {
		b.ReportMetric(mbps/rawMBps, "x-raw")
	}
}
