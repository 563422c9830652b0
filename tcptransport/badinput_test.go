package tcptransport

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
)

// rawHeader returns a frame header with the given fields.
func rawHeader(length uint32, magic uint32, id byte) []byte {
	b := make([]byte, wire.HeaderSize)
	binary.BigEndian.PutUint32(b, length)
	binary.BigEndian.PutUint32(b[4:], magic)
	b[8] = id
	return b
}

// TestServerBadInput sends crafted frames on a raw connection to a
// server that is also serving a healthy channel. Each time the server
// must log an error naming the peer, close the bad connection, and keep
// the healthy channel flowing; nothing leaks. Violations that belong to
// one channel (AddCredit <= 0, a task event for another partition) fail
// only that channel: exchange/chanproto's TestFailurePolicy covers them.
func TestServerBadInput(t *testing.T) {
	maxFrame := wire.MaxFrameSizeFor(testSegment)
	type env struct {
		spare *exchange.ResultPartition // for the raw client's requests
	}
	request := func(e env, c *rawClient, sub int, id wire.ID, credit int32) []byte {
		return c.frame(&wire.PartitionRequest{PartitionID: wire.ID(e.spare.ID()), Subpartition: int32(sub), ReceiverID: id, Credit: credit})
	}
	cases := []struct {
		name      string
		handshake bool
		send      func(t *testing.T, e env, c *rawClient)
		want      string // in the logged error
		code      wire.ErrorCode
	}{
		{"WrongMagic", true, func(t *testing.T, e env, c *rawClient) {
			c.write(t, append(rawHeader(13, 0xDEADBEEF, byte(wire.IDAddCredit)), 0, 0, 0, 1))
		}, "bad magic", wire.CodeProtocol},
		{"NotOurProtocol", false, func(t *testing.T, e env, c *rawClient) {
			c.write(t, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		}, "bad magic", wire.CodeProtocol},
		{"UnknownMessageID", true, func(t *testing.T, e env, c *rawClient) {
			c.write(t, append(rawHeader(13, wire.Magic, 42), 0, 0, 0, 1))
		}, "unknown message id", wire.CodeProtocol},
		{"FrameTooLarge", true, func(t *testing.T, e env, c *rawClient) {
			c.write(t, rawHeader(uint32(maxFrame+1), wire.Magic, byte(wire.IDTaskEventRequest)))
		}, "frame too large", wire.CodeProtocol},
		{"TruncatedFrame", true, func(t *testing.T, e env, c *rawClient) {
			c.write(t, rawHeader(100, wire.Magic, byte(wire.IDTaskEventRequest)), make([]byte, 20))
			if err := c.nc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}, "truncated frame", wire.CodeProtocol},
		{"AddCreditUnknownReceiver", true, func(t *testing.T, e env, c *rawClient) {
			c.write(t, c.frame(&wire.AddCredit{ReceiverID: wire.ID(exchange.NewChannelID()), Credit: 5}))
		}, "AddCredit for unknown receiver", wire.CodeProtocol},
		{"ResumeUnknownReceiver", true, func(t *testing.T, e env, c *rawClient) {
			// A known receiver first, so the connection has state.
			id := wire.ID(exchange.NewChannelID())
			c.write(t, request(e, c, 2, id, 2), c.frame(&wire.ResumeConsumption{ReceiverID: wire.ID(exchange.NewChannelID())}))
		}, "ResumeConsumption for unknown receiver", wire.CodeProtocol},
		{"DuplicatePartitionRequest", true, func(t *testing.T, e env, c *rawClient) {
			id := wire.ID(exchange.NewChannelID())
			c.write(t, request(e, c, 3, id, 2), request(e, c, 4, id, 2))
		}, "second PartitionRequest for receiver", wire.CodeDuplicateReceiver},
		{"VersionMismatch", false, func(t *testing.T, e env, c *rawClient) {
			h := wire.NewHello(c.o)
			h.Version = 2
			c.write(t, c.frame(h))
		}, "peer speaks version 2", wire.CodeVersionMismatch},
		{"UnexpectedMessage", true, func(t *testing.T, e env, c *rawClient) {
			c.write(t, c.frame(&wire.BacklogAnnouncement{ReceiverID: wire.ID(exchange.NewChannelID()), Backlog: 1}))
		}, "unexpected BacklogAnnouncement", wire.CodeProtocol},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkG := transporttest.CheckGoroutines(t)
			ctx := testCtx(t, 60*time.Second)
			var log logBuf
			prod := newEnv(t, Config{}, &log)
			cons := newEnv(t, Config{}, nil)
			f := startFlow(t, prod, cons, "")
			f.read(t, ctx, 200)
			spare, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 5})
			if err != nil {
				t.Fatal(err)
			}

			c := dialRaw(t, prod.Addr(), tc.handshake)
			peer := c.nc.LocalAddr().String()
			tc.send(t, env{spare}, c)
			start := time.Now()
			fatal := c.expectClosed(t)
			t.Logf("bad connection closed after %v", time.Since(start).Round(time.Millisecond))
			if fatal == nil {
				t.Errorf("no fatal ErrorResponse before the close")
			} else if fatal.Code != tc.code {
				t.Errorf("fatal ErrorResponse code %s (%q), want %s", fatal.Code, fatal.Message, tc.code)
			}
			logged := log.String()
			var line string
			for _, l := range strings.Split(logged, "\n") {
				if strings.Contains(l, tc.want) {
					line = l
					break
				}
			}
			if line == "" || !strings.Contains(line, peer) || !strings.Contains(line, `"level":"warn"`) {
				t.Fatalf("no warning naming the peer %s and %q; log:\n%s", peer, tc.want, logged)
			}
			// The healthy channel on its own connection goes on.
			f.read(t, ctx, 500)
			f.close(t)
			spare.Release()
			prod.Close()
			cons.Close()
			transporttest.CheckPools(t, prod, cons)
			checkG()
		})
	}
}

// TestHelloFrameTooSmall: a client whose Hello accepts frames smaller
// than the producer sends is refused at the handshake, before its
// PartitionRequest touches the partition, which a real consumer then
// reads in full.
func TestHelloFrameTooSmall(t *testing.T) {
	checkG := transporttest.CheckGoroutines(t)
	ctx := testCtx(t, 30*time.Second)
	var log logBuf
	prod, cons := newEnv(t, Config{}, &log), newEnv(t, Config{}, nil)
	p, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.EmitTo(ctx, 0, []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, prod.Addr(), false)
	h := wire.NewHello(c.o)
	h.MaxFrameSize = wire.MinMaxFrameSize
	c.write(t, c.frame(h), c.frame(&wire.PartitionRequest{PartitionID: wire.ID(p.ID()), ReceiverID: wire.ID(exchange.NewChannelID()), Credit: 2}))
	fatal := c.expectClosed(t)
	if fatal == nil || fatal.Code != wire.CodeInsufficientCapacity || !strings.Contains(fatal.Message, "SegmentSize") {
		t.Fatalf("fatal ErrorResponse %+v, want InsufficientCapacity naming SegmentSize", fatal)
	}
	g, err := cons.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: prod.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := g.Next(ctx)
	if err != nil || string(e.Record) != "kept" {
		t.Fatalf("the real consumer got %q, %v", e.Record, err)
	}
	g.Close()
	p.Release()
	prod.Close()
	cons.Close()
	checkG()
}
