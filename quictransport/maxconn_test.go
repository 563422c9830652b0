package quictransport_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
)

// TestMaxConnections: a node that serves MaxConnections connections
// closes the next one with ConnCodeTooMany once its handshake is done,
// and gives the place to a healthy consumer when one leaves.
func TestMaxConnections(t *testing.T) {
	defer transporttest.CheckGoroutines(t)()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := testConfig(t)
	cfg.MaxConnections = 1
	prod := newTestNode(t, cfg)
	defer prod.Close()
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const records = 1000
	for range records {
		if err := p.EmitTo(ctx, 0, []byte("record")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}

	first := dialRaw(ctx, t, prod.Addr(), cfg, nil)
	second := dialRaw(ctx, t, prod.Addr(), cfg, nil)
	select {
	case <-second.Context().Done():
	case <-ctx.Done():
		t.Fatal("the connection above MaxConnections was not closed")
	}
	var ae *quic.ApplicationError
	if err := context.Cause(second.Context()); !errors.As(err, &ae) || ae.ErrorCode != quictransport.ConnCodeTooMany || !ae.Remote {
		t.Fatalf("connection above the cap ended with %v, want ConnCodeTooMany from the server", err)
	}
	if first.Context().Err() != nil {
		t.Fatalf("the admitted connection was closed: %v", context.Cause(first.Context()))
	}
	first.CloseWithError(0, "leaving")

	// The place is given again once the server has seen the first one
	// go; a consumer refused before that retries.
	for attempt := 1; ; attempt++ {
		got, err := readAll(ctx, prod.Addr(), p.ID())
		if err == nil {
			if got != records {
				t.Fatalf("healthy consumer read %d records, want %d", got, records)
			}
			t.Logf("healthy consumer admitted at attempt %d", attempt)
			return
		}
		if !strings.Contains(err.Error(), "too many connections") || ctx.Err() != nil {
			t.Fatalf("healthy consumer: %v", err)
		}
	}
}

// readAll reads partition id at addr through a consumer node of its own
// and returns the number of records.
func readAll(ctx context.Context, addr string, id exchange.PartitionID) (int, error) {
	cons, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20, SegmentSize: 8 << 10, Transport: quictransport.New(quictransport.Config{TLS: tlsconf.Options{Certificate: &testCert, PinnedSHA256: [][32]byte{testPin}}})})
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: id, Addr: addr}}})
	if err != nil {
		return 0, err
	}
	defer g.Close()
	n := 0
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if e.Record != nil {
			n++
		}
	}
}
