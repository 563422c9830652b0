// Command tls runs one partition over mutual TLS 1.3 on both transports:
// the producer and a trusted consumer pin each other's certificate, and a
// consumer with a certificate the producer does not trust reads nothing
// and gets a typed error naming the producer.
//
//	go run ./examples/tls
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tls:", err)
		os.Exit(1)
	}
}

// node is one side's TLS material: its certificate, and the
// certificates it trusts (by SHA-256 pin).
type node struct {
	cert  tls.Certificate
	trust [][32]byte
}

// transports builds the two transports from the same TLS material: TLS is
// opt-in on tcp (plain text is for trusted networks) and always on for
// quic.
var transports = map[string]func(n node) exchange.TransportFactory{
	"tcp": func(n node) exchange.TransportFactory {
		return tcptransport.New(tcptransport.Config{TLS: tlsconf.Options{Certificate: &n.cert, PinnedSHA256: n.trust}})
	},
	"quic": func(n node) exchange.TransportFactory {
		return quictransport.New(quictransport.Config{TLS: tlsconf.Options{Certificate: &n.cert, PinnedSHA256: n.trust}})
	},
}

func run(ctx context.Context, out io.Writer) error {
	// In production: certificates from files (CertFile, KeyFile, CAFile)
	// or DeriveSelfSigned from a secret only the job's nodes know.
	jobCert, jobPin, err := tlsconf.DeriveSelfSigned("a secret only this job's nodes know")
	if err != nil {
		return err
	}
	strangerCert, _, err := tlsconf.SelfSigned()
	if err != nil {
		return err
	}
	member := node{cert: jobCert, trust: [][32]byte{jobPin}}
	stranger := node{cert: strangerCert, trust: [][32]byte{jobPin}} // trusts the job, but is not trusted
	for _, name := range []string{"tcp", "quic"} {
		got, err := readAll(ctx, transports[name], member, member)
		if err != nil || got != 1000 {
			return fmt.Errorf("%s, trusted consumer: %d of 1000 records, %v", name, got, err)
		}
		fmt.Fprintf(out, "%s: trusted consumer read %d records\n", name, got)
		got, err = readAll(ctx, transports[name], member, stranger)
		var auth *exchange.AuthError
		if !errors.As(err, &auth) || got != 0 {
			return fmt.Errorf("%s, untrusted consumer: read %d records, error %v; want nothing and an *exchange.AuthError", name, got, err)
		}
		fmt.Fprintf(out, "%s: untrusted consumer read %d records: %v\n", name, got, auth)
	}
	return nil
}

// readAll starts a producer node and a consumer node and reads 1,000
// records through one remote channel.
func readAll(ctx context.Context, transport func(node) exchange.TransportFactory, producer, consumer node) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	prod, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20, Transport: transport(producer)})
	if err != nil {
		return 0, err
	}
	defer prod.Close()
	cons, err := exchange.NewEnvironment(ctx, exchange.Config{NetworkMemory: 4 << 20, Transport: transport(consumer)})
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	part, err := prod.CreatePartition(exchange.PartitionConfig{Subpartitions: 1})
	if err != nil {
		return 0, err
	}
	go func() {
		w := exchange.NewRecordWriter(part, nil)
		for i := range 1000 {
			if w.Emit(ctx, fmt.Appendf(nil, "record %d", i)) != nil {
				return
			}
		}
		_ = w.Finish(ctx)
	}()
	gate, err := cons.CreateInputGate(exchange.GateConfig{
		Channels:                []exchange.ChannelSpec{{Partition: part.ID(), Addr: prod.Addr()}},
		PartitionRequestTimeout: 5 * time.Second,
	})
	if err != nil {
		return 0, err
	}
	defer gate.Close()
	n := 0
	for {
		e, err := gate.Next(ctx)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if e.Event == nil {
			n++
		}
	}
}
