package transporttest_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/compress"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

const fakeSegment = 8 << 10

// consumerSide is how one transport's consumer meets a fake producer.
type consumerSide struct {
	name    string
	factory func(t testing.TB) exchange.TransportFactory
	fake    func(t testing.TB) *transporttest.FakeProducer
	// framingFailsConnection: a framing error (frame too large, garbage)
	// fails every channel of the connection (TCP: the byte stream is
	// lost), not just the one stream (QUIC).
	framingFailsConnection bool
}

var consumerSides = []consumerSide{
	{
		name:    "tcp",
		factory: func(testing.TB) exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) },
		fake: func(t testing.TB) *transporttest.FakeProducer {
			return transporttest.NewFakeTCPProducer(t, fakeSegment)
		},
		framingFailsConnection: true,
	},
	{
		name:    "quic",
		factory: func(t testing.TB) exchange.TransportFactory { return quictransport.New(quicConfig(t)) },
		fake: func(t testing.TB) *transporttest.FakeProducer {
			cfg := quicConfig(t)
			return transporttest.NewFakeQUICProducer(t, fakeSegment, &tls.Config{
				Certificates: []tls.Certificate{*cfg.TLS.Certificate},
				NextProtos:   []string{quictransport.ALPN},
				ClientAuth:   tls.RequireAnyClientCert,
				MinVersion:   tls.VersionTLS13,
			}, nil)
		},
	},
}

// misbehaviour is one thing a hostile or broken producer does as the
// first message of a channel.
type misbehaviour struct {
	name string
	// noCredit: the channel under attack starts with no credit.
	noCredit bool
	send     func(c *transporttest.FakeChannel) error
	// framing: the violation destroys the frame boundaries.
	framing bool
	want    error
}

var misbehaviours = []misbehaviour{
	{
		name:     "BufferWithoutCredit",
		noCredit: true,
		send:     func(c *transporttest.FakeChannel) error { return c.SendBuffer(0, 0, []byte("uninvited")) },
		want:     exchange.ErrProtocol,
	},
	{
		name: "SequenceGap",
		send: func(c *transporttest.FakeChannel) error { return c.SendBuffer(1, 0, []byte("skipped one")) },
		want: &exchange.SequenceError{},
	},
	{
		name: "FrameTooLarge",
		send: func(c *transporttest.FakeChannel) error {
			// A header claiming a payload of ten segments; the body never
			// comes: the consumer must refuse before reading it.
			return c.Send(&wire.BufferResponse{DataType: wire.DataBuffer, Size: 10 * fakeSegment})
		},
		framing: true,
		want:    wire.ErrFrameTooLarge,
	},
	{
		name: "Garbage",
		send: func(c *transporttest.FakeChannel) error {
			return c.SendRaw([]byte("GET / HTTP/1.1\r\nHost: qexchange\r\n\r\n"))
		},
		framing: true,
		want:    wire.ErrProtocol,
	},
	{
		// A payload flagged compressed that is not an LZ4 block: that
		// channel fails, the framing is intact.
		name: "CorruptCompressedPayload",
		send: func(c *transporttest.FakeChannel) error {
			payload := []byte("\xff\xff\xff\xff not an lz4 block at all")
			return c.SendBufferResponse(&wire.BufferResponse{DataType: wire.DataBuffer, Compressed: true}, payload)
		},
		want: compress.ErrCorrupt,
	},
}

// TestConsumerAgainstBadProducer: a fake producer misbehaves on one
// channel; that channel fails with a typed error naming the producer, and
// a channel of another gate on the same connection fails too only when
// the violation destroyed the connection's framing (TCP), else it keeps
// receiving.
func TestConsumerAgainstBadProducer(t *testing.T) {
	for _, side := range consumerSides {
		for _, mb := range misbehaviours {
			t.Run(side.name+"/"+mb.name, func(t *testing.T) {
				t.Cleanup(transporttest.CheckGoroutines(t))
				runBadProducer(t, side, mb)
			})
		}
	}
}

func runBadProducer(t *testing.T, side consumerSide, mb misbehaviour) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fake := side.fake(t)
	env, err := exchange.NewEnvironment(ctx, exchange.Config{
		NetworkMemory: 4 << 20,
		SegmentSize:   fakeSegment,
		Transport:     side.factory(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Close()
		transporttest.CheckPools(t, env)
	})
	badPart, goodPart := exchange.NewPartitionID(), exchange.NewPartitionID()
	badCfg := exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: badPart, Addr: fake.Addr()}}}
	if mb.noCredit {
		badCfg.ExclusiveBuffers, badCfg.FloatingBuffers = exchange.NoExclusiveBuffers, 2
	}
	bad, err := env.CreateInputGate(badCfg)
	if err != nil {
		t.Fatal(err)
	}
	good, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: goodPart, Addr: fake.Addr()}}})
	if err != nil {
		t.Fatal(err)
	}
	var badCh, goodCh *transporttest.FakeChannel
	for badCh == nil || goodCh == nil {
		c, err := fake.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch exchange.PartitionID(c.Request.PartitionID) {
		case badPart:
			badCh = c
		case goodPart:
			goodCh = c
		default:
			t.Fatalf("request for unknown partition %x", c.Request.PartitionID)
		}
	}
	if mb.noCredit && badCh.Request.Credit != 0 {
		t.Fatalf("a gate without exclusive buffers asked with credit %d, want 0", badCh.Request.Credit)
	}
	if err := mb.send(badCh); err != nil {
		t.Fatal(err)
	}
	_, err = bad.Next(ctx)
	wantFailure(t, err, fake.Addr(), mb.want)

	if mb.framing && side.framingFailsConnection {
		_, err := good.Next(ctx)
		wantFailure(t, err, fake.Addr(), exchange.ErrProtocol)
		return
	}
	if err := goodCh.SendBuffer(0, 0, []byte("healthy")); err != nil {
		t.Fatal(err)
	}
	if e, err := good.Next(ctx); err != nil || string(e.Record) != "healthy" {
		t.Fatalf("the other channel after %s: %q, %v; want it unharmed", mb.name, e.Record, err)
	}
}

// wantFailure checks a channel failure: a *ChannelError wrapping want
// (errors.Is, or errors.As for a pointer to an error type), naming peer.
func wantFailure(t *testing.T, err error, peer string, want error) {
	t.Helper()
	var ce *exchange.ChannelError
	if !errors.As(err, &ce) || !errors.Is(err, exchange.ErrProtocol) {
		t.Fatalf("Next: %v; want a *ChannelError wrapping ErrProtocol", err)
	}
	if se, ok := want.(*exchange.SequenceError); ok {
		if !errors.As(err, &se) {
			t.Fatalf("Next: %v; want a *SequenceError", err)
		}
	} else if !errors.Is(err, want) {
		t.Fatalf("Next: %v; want %v", err, want)
	}
	if !strings.Contains(err.Error(), peer) {
		t.Fatalf("Next: %q does not name the producer %s", err, peer)
	}
}
