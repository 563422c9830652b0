package quictransport_test

import (
	"context"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
)

// flow runs n channels from a new producer to a gate on cons until every
// channel delivered a record, then ends them.
func flow(t *testing.T, ctx context.Context, prod, cons *exchange.Environment, n int, during func()) {
	t.Helper()
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: n, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]exchange.ChannelSpec, n)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: prod.Addr()}
	}
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := p.EmitTo(ctx, i, []byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	seen := make(map[int]bool)
	for len(seen) < n {
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if e.Record != nil {
			seen[e.Channel] = true
		}
	}
	if during != nil {
		during()
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := g.Next(ctx); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	g.Close()
	p.Release()
}

func envWith(t *testing.T, cfg quictransport.Config) *exchange.Environment {
	t.Helper()
	e, err := exchange.NewEnvironment(context.Background(), exchange.Config{NetworkMemory: 8 << 20, SegmentSize: 8 << 10, Transport: quictransport.New(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestConnectionsPerNode: with K connections per node the channels to one
// node are spread over K QUIC connections, which the producer accepts on
// its one socket.
func TestConnectionsPerNode(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := testConfig(t)
	prod := envWith(t, cfg)
	cfg.ConnectionsPerNode = 4
	cons := envWith(t, cfg)
	flow(t, ctx, prod, cons, 64, func() {
		if n := quictransport.Conns(cons.Transport()); n < 2 || n > 4 {
			t.Fatalf("64 channels used %d connections with ConnectionsPerNode 4", n)
		}
	})
	prod.Close()
	cons.Close()
	transporttest.CheckPools(t, prod, cons)
	checkG()
}

// TestExtraProtocolAndQlog: a connection of another ALPN reaches its
// handler over the exchange's socket and TLS material, and QlogDir gets a
// trace of each connection.
func TestExtraProtocolAndQlog(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.QlogDir = dir
	cfg.ExtraProtocols = map[string]func(*quic.Conn){"echo/1": func(c *quic.Conn) {
		str, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		_, _ = io.Copy(str, str)
		str.Close()
		<-c.Context().Done()
	}}
	prod, cons := envWith(t, cfg), envWith(t, cfg)
	flow(t, ctx, prod, cons, 2, nil)

	tr := cons.Transport().(*quictransport.Transport)
	if _, err := tr.DialProtocol(ctx, prod.Addr(), quictransport.ALPN); err == nil {
		t.Fatal("DialProtocol accepted the exchange's own ALPN")
	}
	c, err := tr.DialProtocol(ctx, prod.Addr(), "echo/1")
	if err != nil {
		t.Fatal(err)
	}
	str, err := c.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := str.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	str.Close()
	got, err := io.ReadAll(str)
	if err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	// DialQUIC takes the caller's TLS material (as rpc.Config.DialQUIC).
	own := &tls.Config{Certificates: []tls.Certificate{*cfg.TLS.Certificate}, InsecureSkipVerify: true, NextProtos: []string{"echo/1"}}
	c2, err := tr.DialQUIC(ctx, prod.Addr(), own, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.CloseWithError(0, "done")
	if _, err := tr.DialProtocol(ctx, prod.Addr(), "nosuch/1"); err == nil {
		t.Fatal("a protocol the peer does not serve was accepted")
	}
	c.CloseWithError(0, "done")
	prod.Close()
	cons.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.sqlog"))
	var client, server int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(b), "quic") {
			t.Fatalf("qlog %s: %v, %d bytes", f, err, len(b))
		}
		if strings.HasSuffix(f, "_client.sqlog") {
			client++
		} else {
			server++
		}
	}
	if client == 0 || server == 0 {
		t.Fatalf("qlog traces: %d client, %d server, want both", client, server)
	}
	transporttest.CheckPools(t, prod, cons)
	checkG()
}
