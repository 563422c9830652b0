package quictransport_test

import (
	"context"
	"fmt"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/quictransport"
)

// Two nodes on loopback exchange a record over QUIC. Both derive the same
// certificate from a shared secret and pin its fingerprint, so no
// certificate files are needed.
func Example() {
	cert, pin, err := tlsconf.DeriveSelfSigned("example secret")
	if err != nil {
		panic(err)
	}
	cfg := quictransport.Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}}
	node := func() *exchange.Environment {
		env, err := exchange.NewEnvironment(context.Background(), exchange.Config{
			Transport: quictransport.New(cfg),
		})
		if err != nil {
			panic(err)
		}
		return env
	}
	producer, consumer := node(), node()
	defer producer.Close()
	defer consumer.Close()

	ctx := context.Background()
	p, err := producer.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		panic(err)
	}
	g, err := consumer.CreateInputGate(exchange.GateConfig{
		Channels: []exchange.ChannelSpec{{Partition: p.ID(), Addr: producer.Addr()}},
	})
	if err != nil {
		panic(err)
	}
	defer g.Close()
	if err := p.EmitTo(ctx, 0, []byte("hello over QUIC")); err != nil {
		panic(err)
	}
	p.Finish(ctx)
	e, err := g.Next(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s (one stream per channel, ALPN %s)\n", e.Record, quictransport.ALPN)
	// Output: hello over QUIC (one stream per channel, ALPN qexchange/1)
}
