// Command two-process is a producer and a consumer in two processes, the
// way an engine embeds the exchange: each process is one node
// (exchange.Environment); partition ids derive from a job name, so the two
// agree without a coordinator; the producer ends with the one correct
// sequence (EndOfData, wait for the consumer's acknowledgement, Finish,
// Shutdown) so nothing in flight is lost.
//
//	go run ./examples/two-process -role producer -listen 127.0.0.1:7000 -records 1000000
//	go run ./examples/two-process -role consumer -connect 127.0.0.1:7000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/typed"
	"github.com/qexchange/qexchange/tcptransport"
)

const job = "two-process-example"

func main() {
	role := flag.String("role", "", "producer or consumer")
	listen := flag.String("listen", "127.0.0.1:0", "producer: address to listen on")
	connect := flag.String("connect", "", "consumer: the producer's address")
	records := flag.Int("records", 100_000, "producer: records to send")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch *role {
	case "producer":
		err = produce(ctx, *listen, uint64(*records), os.Stdout)
	case "consumer":
		err = consume(ctx, *connect, os.Stdout)
	default:
		fmt.Fprintln(os.Stderr, "two-process: -role producer or -role consumer")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "two-process:", err)
		os.Exit(1)
	}
}

func node(ctx context.Context, listen string) (*exchange.Environment, error) {
	return exchange.NewEnvironment(ctx, exchange.Config{
		NetworkMemory: 8 << 20,
		Transport:     tcptransport.New(tcptransport.Config{}),
		ListenAddr:    listen,
	})
}

// produce sends 0..n-1 as uint64 records and returns once the consumer
// has acknowledged them all.
func produce(ctx context.Context, listen string, n uint64, out io.Writer) error {
	env, err := node(ctx, listen)
	if err != nil {
		return err
	}
	defer env.Close()
	part, err := env.CreatePartition(exchange.PartitionConfig{ID: exchange.PartitionIDFromName(job, 0), Subpartitions: 1})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening %s\n", env.Addr())
	codec, _ := typed.NewFixed[uint64]()
	w := typed.NewWriter[uint64](part, codec, nil)
	for i := range n {
		if err := w.Emit(ctx, i); err != nil { // blocks until the consumer comes and has credit
			return err
		}
	}
	// The one correct ending: EndOfData, the consumer's acknowledgement
	// that it processed everything, Finish, then Shutdown, which returns
	// once the consumer took EndOfPartition (or says what it did not take).
	if err := part.EndOfData(ctx); err != nil {
		return err
	}
	if err := part.WaitAllRecordsProcessed(ctx); err != nil {
		return fmt.Errorf("consumer did not acknowledge: %w", err) // names a consumer that went away
	}
	if err := part.Finish(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := env.Shutdown(sctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "delivered %d\n", n)
	return nil
}

// consume reads until EndOfData, acknowledges, and reads on to the end of
// the partition: the producer finishes only once the acknowledgement
// arrived, so the end also proves the acknowledgement was delivered.
func consume(ctx context.Context, producer string, out io.Writer) error {
	env, err := node(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer env.Close()
	gate, err := env.CreateInputGate(exchange.GateConfig{
		Channels:                []exchange.ChannelSpec{{Partition: exchange.PartitionIDFromName(job, 0), Addr: producer}},
		PartitionRequestTimeout: 30 * time.Second, // the producer may start later
	})
	if err != nil {
		return err
	}
	defer gate.Close()
	codec, _ := typed.NewFixed[uint64]()
	in := typed.NewGate[uint64](gate, codec)
	var count, next uint64
	acked := false
	for {
		e, err := in.Next(ctx)
		if errors.Is(err, io.EOF) {
			if !acked {
				return errors.New("the partition ended without EndOfData")
			}
			fmt.Fprintf(out, "received %d in order\n", count)
			return nil
		}
		if err != nil {
			return err
		}
		switch e.Event.(type) {
		case nil:
			if e.Value != next {
				return fmt.Errorf("record %d: got %d", next, e.Value)
			}
			next++
			count++
		case exchange.EndOfData:
			if err := gate.AckAllRecordsProcessed(); err != nil {
				return err
			}
			acked = true
		}
	}
}
