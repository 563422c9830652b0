// Command metrics runs a small pipeline with a deliberately slow consumer
// and serves the exchange's Prometheus metrics at /metrics, so you can
// watch backpressure appear on the producer whose consumer lags.
//
//	go run ./examples/metrics -listen 127.0.0.1:9464 -duration 30s
//	curl -s 127.0.0.1:9464/metrics | grep qexchange_back_pressured
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qexchange/qexchange/exchange"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9464", "address to serve /metrics on")
	duration := flag.Duration("duration", 30*time.Second, "how long to run")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(2)
	}
	if err := run(ctx, ln, *duration, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
}

// run serves /metrics on ln while a fast and a slow pipeline run for d.
func run(ctx context.Context, ln net.Listener, d time.Duration, out io.Writer) error {
	reg := prometheus.NewRegistry()
	env, err := exchange.NewEnvironment(ctx, exchange.Config{Metrics: reg})
	if err != nil {
		return err
	}
	defer env.Close()
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Fprintf(out, "serving http://%s/metrics for %v\n", ln.Addr(), d)

	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	fast, err := pipeline(ctx, env, 0)
	if err != nil {
		return err
	}
	slow, err := pipeline(ctx, env, time.Millisecond) // reads one record per ms
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "fast partition %s, slow partition %s\n", fast, slow)
	<-ctx.Done()
	return nil
}

// pipeline runs a producer that emits as fast as it can and a consumer
// that waits delay after every record; it returns the partition's id.
func pipeline(ctx context.Context, env *exchange.Environment, delay time.Duration) (exchange.PartitionID, error) {
	part, err := env.CreatePartition(exchange.PartitionConfig{Subpartitions: 1, BufferTimeout: 10 * time.Millisecond})
	if err != nil {
		return exchange.PartitionID{}, err
	}
	gate, err := env.CreateInputGate(exchange.GateConfig{Channels: []exchange.ChannelSpec{{Partition: part.ID()}}})
	if err != nil {
		return exchange.PartitionID{}, err
	}
	go func() {
		rec := make([]byte, 256)
		for part.EmitTo(ctx, 0, rec) == nil {
		}
	}()
	go func() {
		defer gate.Close()
		for {
			if _, err := gate.Next(ctx); err != nil {
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					fmt.Fprintln(os.Stderr, "consumer:", err)
				}
				return
			}
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return part.ID(), nil
}
