package quictransport_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
	"github.com/qexchange/qexchange/quictransport"
)

// TestBadInputFailsOnlyItsStream opens raw streams with bad input on the
// very connection a real exchange channel uses. Each bad stream gets an
// ErrorResponse naming the peer and is closed (FIN after the error,
// STOP_SENDING with StreamCodeProtocol); the real channel keeps
// receiving records after every one of them.
func TestBadInputFailsOnlyItsStream(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const seg = 8 << 10
	prod, cons := newEnv(t, 8<<20, seg), newEnv(t, 8<<20, seg)
	opts := wire.Options{StreamMode: true, MaxFrameSize: wire.MaxFrameSizeFor(seg)}

	// The real channel: a producer writing numbered records until stopped.
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// An idle partition whose subpartitions the bad AddCredit streams
	// request (a reader must exist for AddCredit to be read).
	idle, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWriter := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		rec := make([]byte, 64)
		for i := uint64(0); ; i++ {
			binary.BigEndian.PutUint64(rec, i)
			if err := p.EmitTo(wctx, 0, rec); err != nil {
				return
			}
		}
	}()
	var want uint64
	// expectFlow reads n more records, in order.
	expectFlow := func(what string, n int) {
		t.Helper()
		for range n {
			e, err := g.Next(ctx)
			if err != nil {
				t.Fatalf("%s: real channel: %v", what, err)
			}
			if got := binary.BigEndian.Uint64(e.Record); got != want {
				t.Fatalf("%s: real channel: record %d, want %d", what, got, want)
			}
			want++
		}
	}
	expectFlow("before", 100)

	conn := quictransport.ConnTo(cons.Transport(), prod.Addr())
	if conn == nil {
		t.Fatal("no connection to the producer")
	}
	peer := conn.LocalAddr().String() // how the producer names us

	hello := wire.AppendFrame(nil, ptr(wire.NewHello(opts)), opts)
	request := func(sub int, credit int32) []byte {
		pr := wire.PartitionRequest{PartitionID: wire.ID(idle.ID()), Subpartition: int32(sub), Credit: credit}
		return wire.AppendFrame(append([]byte(nil), hello...), &pr, opts)
	}
	header := func(length uint32, magic uint32, id byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, length)
		b = binary.BigEndian.AppendUint32(b, magic)
		return append(b, id)
	}
	cases := []struct {
		name   string
		input  []byte
		fin    bool // close our side after the input (truncation)
		code   wire.ErrorCode
		expect string
	}{
		{"wrong magic", header(20, 0xDEADBEEF, byte(wire.IDHello)), false, wire.CodeProtocol, "bad magic"},
		{"unknown message id", header(20, wire.Magic, 42), false, wire.CodeProtocol, "unknown message"},
		{"length above maximum", header(uint32(opts.EffectiveMaxFrameSize()+1), wire.Magic, byte(wire.IDTaskEventRequest)), false, wire.CodeProtocol, "frame too large"},
		{"truncated frame", append(append([]byte(nil), hello...), header(60, wire.Magic, byte(wire.IDPartitionRequest))[:9]...), true, wire.CodeProtocol, "truncated"},
		{"AddCredit 0", wire.AppendFrame(request(0, 1), &wire.AddCredit{Credit: 0}, opts), false, wire.CodeProtocol, "AddCredit.credit = 0"},
		{"AddCredit negative", wire.AppendFrame(request(1, 1), &wire.AddCredit{Credit: -5}, opts), false, wire.CodeProtocol, "AddCredit.credit = -5"},
		{"wrong protocol version", wire.AppendFrame(nil, &wire.Hello{Version: wire.ProtocolVersion + 7, MaxFrameSize: uint32(opts.EffectiveMaxFrameSize())}, opts), false, wire.CodeVersionMismatch, "version"},
		{"not our protocol", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, wire.CodeProtocol, ""},
		{"data from the consumer", wire.AppendFrame(request(2, 1), &wire.BufferResponse{Size: 0}, opts), false, wire.CodeProtocol, "BufferResponse"},
		{"no Hello", wire.AppendFrame(nil, &wire.PartitionRequest{PartitionID: wire.ID(idle.ID()), Subpartition: 3}, opts), false, wire.CodeProtocol, "want Hello"},
	}
	for _, c := range cases {
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatalf("%s: open stream: %v", c.name, err)
		}
		if _, err := str.Write(c.input); err != nil {
			t.Fatalf("%s: write: %v", c.name, err)
		}
		if c.fin {
			str.Close()
		}
		_ = str.SetReadDeadline(time.Now().Add(20 * time.Second))
		rd := wire.NewReader(str, opts)
		m, err := rd.Next()
		if h, ok := m.(*wire.Hello); err != nil || !ok || wire.CheckHello(*h) != nil {
			t.Fatalf("%s: first frame %v, %v; want the producer's Hello", c.name, m, err)
		}
		for {
			m, err = rd.Next()
			if err != nil {
				t.Fatalf("%s: reading the ErrorResponse: %v", c.name, err)
			}
			if _, ok := m.(*wire.BacklogAnnouncement); !ok {
				break
			}
		}
		er, ok := m.(*wire.ErrorResponse)
		if !ok {
			t.Fatalf("%s: got %T, want an ErrorResponse", c.name, m)
		}
		if er.Code != c.code || er.Fatal || !strings.Contains(er.Message, peer) || !strings.Contains(er.Message, c.expect) {
			t.Fatalf("%s: ErrorResponse %+v: want code %v naming peer %s and %q", c.name, er, c.code, peer, c.expect)
		}
		// The producer closed its side after the error ...
		if _, err := rd.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: after the ErrorResponse: %v, want EOF", c.name, err)
		}
		// ... and stopped reading ours with StreamCodeProtocol (unless we
		// closed it ourselves).
		select {
		case <-str.Context().Done():
		case <-ctx.Done():
			t.Fatalf("%s: the producer did not stop reading the stream", c.name)
		}
		var se *quic.StreamError
		if cause := context.Cause(str.Context()); !c.fin && (!errors.As(cause, &se) || se.ErrorCode != quictransport.StreamCodeProtocol || !se.Remote) {
			t.Fatalf("%s: write side ended with %v, want a remote StreamError with StreamCodeProtocol", c.name, cause)
		}
		str.CancelRead(quictransport.StreamCodeCancelled)
		t.Logf("%s: %s", c.name, er.Message)
		// Only that stream failed: the real channel still flows.
		expectFlow("after "+c.name, 50)
	}
	stopWriter()
	wg.Wait()
	g.Close()
	p.Release()
	idle.Release()
	prod.Close()
	cons.Close()
	checkG()
}

func ptr[T any](v T) *T { return &v }
