package tcptransport

import (
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

const (
	benchSegment  = 32 << 10
	benchChannels = 64
	// benchRecord fills one segment exactly with its 4-byte length prefix.
	benchRecord = benchSegment - 4
)

// rawRun moves n 32 KiB chunks over a plain loopback TCP connection.
type rawRun struct {
	ln   net.Listener
	w, r net.Conn
}

func newRawRun(b *testing.B) *rawRun {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r := <-accepted
	if r == nil {
		b.Fatal("accept failed")
	}
	return &rawRun{ln: ln, w: w, r: r}
}

func (rr *rawRun) move(b *testing.B, n int) time.Duration {
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, benchSegment)
		for range n {
			if _, err := rr.w.Write(buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	buf := make([]byte, benchSegment)
	for range n {
		if _, err := io.ReadFull(rr.r, buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func (rr *rawRun) close() {
	rr.w.Close()
	rr.r.Close()
	rr.ln.Close()
}

// transportRun moves full 32 KiB buffers from one partition with 64
// subpartitions to one gate with 64 remote channels, all on one loopback
// TCP connection.
type transportRun struct {
	prod, cons *exchange.Environment
	p          *exchange.ResultPartition
	g          *exchange.InputGate
	rec        []byte
	sub        int
}

func newTransportRun(b *testing.B, cfg Config) *transportRun {
	env := func() *exchange.Environment {
		e, err := exchange.NewEnvironment(context.Background(), exchange.Config{
			NetworkMemory: 32 << 20, SegmentSize: benchSegment, Transport: New(cfg),
		})
		if err != nil {
			b.Fatal(err)
		}
		return e
	}
	tr := &transportRun{prod: env(), cons: env(), rec: make([]byte, benchRecord)}
	p, err := tr.prod.CreatePartition(exchange.PartitionConfig{Subpartitions: benchChannels, BufferTimeout: exchange.FlushFullBuffersOnly})
	if err != nil {
		b.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, benchChannels)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: tr.prod.Addr()}
	}
	g, err := tr.cons.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		b.Fatal(err)
	}
	tr.p, tr.g = p, g
	tr.move(b, 4*benchChannels) // connect and warm up
	return tr
}

func (tr *transportRun) move(b *testing.B, n int) time.Duration {
	ctx := context.Background()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for range n {
			if err := tr.p.EmitTo(ctx, tr.sub, tr.rec); err != nil {
				done <- err
				return
			}
			if tr.sub++; tr.sub == benchChannels {
				tr.sub = 0
			}
		}
		done <- nil
	}()
	for got := 0; got < n; {
		e, err := tr.g.Next(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(e.Record) != benchRecord {
			b.Fatalf("record of %d bytes", len(e.Record))
		}
		got++
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func (tr *transportRun) close() {
	tr.g.Close()
	tr.p.Release()
	tr.prod.Close()
	tr.cons.Close()
}

// BenchmarkTransport32KiB64Channels compares the transport with the raw
// limit of the same loopback: "raw" writes 32 KiB chunks to a plain TCP
// connection, "transport" moves full 32 KiB buffers through 64 channels
// on one connection, "transport-tls" the same with mutual TLS; all report
// MB/s per 32 KiB moved. "ratio" moves the same 128 MiB both ways per
// iteration and reports transport/raw; "tls-ratio" moves 128 MiB through
// the plain and the TLS transport per iteration and reports tls/plain.
//
//	go test -run '^$' -bench Transport32KiB64Channels -benchmem ./tcptransport/
func BenchmarkTransport32KiB64Channels(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		rr := newRawRun(b)
		defer rr.close()
		b.SetBytes(benchSegment)
		b.ReportAllocs()
		b.ResetTimer()
		rr.move(b, b.N)
	})
	b.Run("transport", func(b *testing.B) {
		tr := newTransportRun(b, Config{})
		defer tr.close()
		b.SetBytes(benchSegment)
		b.ReportAllocs()
		b.ResetTimer()
		tr.move(b, b.N)
		b.StopTimer()
		s, cs := tcpOf(tr.prod).Stats(), tcpOf(tr.cons).Stats()
		if s.Writes > 0 && cs.BuffersReceived > 0 {
			b.ReportMetric(float64(s.BytesWritten)/float64(s.Writes)/1024, "KiB/write")
			b.ReportMetric(float64(cs.ClientWrites)/float64(cs.BuffersReceived), "creditwrites/buf")
		}
	})
	b.Run("transport-tls", func(b *testing.B) {
		tr := newTransportRun(b, tlsConfig(b))
		defer tr.close()
		b.SetBytes(benchSegment)
		b.ReportAllocs()
		b.ResetTimer()
		tr.move(b, b.N)
	})
	b.Run("tls-ratio", func(b *testing.B) {
		plain := newTransportRun(b, Config{})
		defer plain.close()
		secure := newTransportRun(b, tlsConfig(b))
		defer secure.close()
		compareMoves(b, "plain", plain.move, "tls", secure.move)
	})
	b.Run("ratio", func(b *testing.B) {
		rr := newRawRun(b)
		defer rr.close()
		tr := newTransportRun(b, Config{})
		defer tr.close()
		compareMoves(b, "raw", rr.move, "transport", tr.move)
	})
}

// compareMoves moves the same 128 MiB with x and then with y in every
// iteration and reports both rates, y/x, and the CPU (user+system, whole
// process) per KiB of each: on a shared or busy machine the fairer
// comparison.
func compareMoves(b *testing.B, xName string, x func(*testing.B, int) time.Duration, yName string, y func(*testing.B, int) time.Duration) {
	const n = 4096 // 128 MiB
	b.ResetTimer()
	var xd, yd, xCPU, yCPU time.Duration
	for range b.N {
		c0 := cpuTime()
		xd += x(b, n)
		c1 := cpuTime()
		yd += y(b, n)
		xCPU, yCPU = xCPU+c1-c0, yCPU+cpuTime()-c1
	}
	mb := float64(n*benchSegment*b.N) / 1e6
	kib := float64(n * b.N * benchSegment / 1024)
	b.ReportMetric(mb/xd.Seconds(), xName+"-MB/s")
	b.ReportMetric(mb/yd.Seconds(), yName+"-MB/s")
	b.ReportMetric(xd.Seconds()/yd.Seconds(), yName+"/"+xName)
	b.ReportMetric(float64(xCPU.Nanoseconds())/kib, xName+"-cpu-ns/KiB")
	b.ReportMetric(float64(yCPU.Nanoseconds())/kib, yName+"-cpu-ns/KiB")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
