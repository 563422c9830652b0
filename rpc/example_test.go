package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qexchange/qexchange/exchange/tlsconf"
	"github.com/qexchange/qexchange/rpc"
)

type Heartbeat struct{ Worker string }
type Ack struct{ Seen int }

// JobMasterGateway is a typed gateway: it embeds *rpc.Gateway and wraps
// rpc.Call.
type JobMasterGateway struct{ *rpc.Gateway }

func (g JobMasterGateway) Heartbeat(ctx context.Context, h Heartbeat) (Ack, error) {
	return rpc.Call[Heartbeat, Ack](ctx, g.Gateway, "heartbeat", h)
}

// twoNodes starts a coordinator's and a worker's service on loopback
// sharing one pinned self-signed certificate.
func twoNodes(transport string) (coordinator, worker *rpc.Service) {
	cert, pin, err := tlsconf.SelfSigned()
	if err != nil {
		panic(err)
	}
	cfg := rpc.Config{TLS: tlsconf.Options{Certificate: &cert, PinnedSHA256: [][32]byte{pin}}, Transport: transport}
	if coordinator, err = rpc.NewService(cfg); err != nil {
		panic(err)
	}
	if worker, err = rpc.NewService(cfg); err != nil {
		panic(err)
	}
	return coordinator, worker
}

func Example() {
	ctx := context.Background()
	coordinator, worker := twoNodes(rpc.QUIC)
	defer coordinator.Close()
	defer worker.Close()

	// The coordinator hosts a JobMaster endpoint. Its state needs no
	// lock: every call runs on the endpoint's main goroutine.
	seen := map[string]int{}
	jm, _ := coordinator.NewEndpoint(rpc.EndpointConfig{ID: "jobmaster", Gateway: "JobMasterGateway"})
	_ = rpc.Register(jm, "heartbeat", func(_ context.Context, h Heartbeat) (Ack, error) {
		seen[h.Worker]++
		return Ack{Seen: seen[h.Worker]}, nil
	})
	if err := jm.Start(ctx); err != nil {
		panic(err)
	}

	// A worker connects (the handshake checks the gateway type) and calls.
	g, err := worker.Connect(ctx, coordinator.Addr(), "jobmaster", "JobMasterGateway")
	if err != nil {
		panic(err)
	}
	jmg := JobMasterGateway{g}
	for range 3 {
		ack, err := jmg.Heartbeat(ctx, Heartbeat{Worker: "w1"})
		if err != nil {
			panic(err)
		}
		fmt.Println("heartbeats seen:", ack.Seen)
	}

	// A wrong gateway type fails the handshake, naming both.
	_, err = worker.Connect(ctx, coordinator.Addr(), "jobmaster", "TaskExecutorGateway")
	fmt.Println(errors.Is(err, rpc.ErrHandshake))
	// Output:
	// heartbeats seen: 1
	// heartbeats seen: 2
	// heartbeats seen: 3
	// true
}

// An endpoint's lifecycle: calls fail at once unless it is started.
func ExampleEndpoint_Start() {
	ctx := context.Background()
	coordinator, worker := twoNodes(rpc.TCP)
	defer coordinator.Close()
	defer worker.Close()

	ep, _ := coordinator.NewEndpoint(rpc.EndpointConfig{
		ID:      "echo",
		OnStart: func(context.Context) error { fmt.Println("OnStart"); return nil },
		OnStop:  func(context.Context) error { fmt.Println("OnStop"); return nil },
	})
	_ = rpc.Register(ep, "echo", func(_ context.Context, s string) (string, error) { return s, nil })
	g, _ := worker.Connect(ctx, coordinator.Addr(), "echo", "echo")

	_, err := rpc.Call[string, string](ctx, g, "echo", "hello")
	fmt.Println(ep.State(), errors.Is(err, rpc.ErrNotStarted))
	_ = ep.Start(ctx)
	s, _ := rpc.Call[string, string](ctx, g, "echo", "hello")
	fmt.Println(ep.State(), s)
	_ = ep.Terminate(ctx)
	fmt.Println(ep.State())
	// Output:
	// stopped true
	// OnStart
	// started hello
	// OnStop
	// terminated
}

// Fencing: a new leader sets a new token; calls with the old one are
// rejected.
func ExampleGateway_WithFencingToken() {
	ctx := context.Background()
	coordinator, worker := twoNodes(rpc.TCP)
	defer coordinator.Close()
	defer worker.Close()

	jm, _ := coordinator.NewEndpoint(rpc.EndpointConfig{ID: "jobmaster", Fenced: true})
	_ = rpc.Register(jm, "ping", func(context.Context, int) (int, error) { return 1, nil })
	_ = jm.Start(ctx)
	setToken := func(t rpc.FencingToken) {
		_, _ = rpc.CallAsyncWithoutFencing(ctx, jm, func() (int, error) { return 0, jm.SetFencingToken(t) }).Get(ctx)
	}
	setToken("leader-1")
	g, _ := worker.Connect(ctx, coordinator.Addr(), "jobmaster", "jobmaster")
	_, err := rpc.Call[int, int](ctx, g.WithFencingToken("leader-1"), "ping", 0)
	fmt.Println(err)
	setToken("leader-2")
	_, err = rpc.Call[int, int](ctx, g.WithFencingToken("leader-1"), "ping", 0)
	fmt.Println(err)
	// Output:
	// <nil>
	// rpc: fenced out: jobmaster.ping expects fencing token "leader-2", call carried "leader-1"
}

// Work scheduled on the main goroutine, and its result as a Future.
func ExampleCallAsync() {
	ctx := context.Background()
	svc, other := twoNodes(rpc.TCP)
	defer svc.Close()
	defer other.Close()
	ep, _ := svc.NewEndpoint(rpc.EndpointConfig{ID: "counter"})
	_ = ep.Start(ctx)

	counter := 0
	done := make(chan struct{})
	ep.ScheduleRunAsync(10*time.Millisecond, func() { counter += 10; close(done) })
	<-done
	v, err := rpc.CallAsync(ctx, ep, func() (int, error) {
		counter++
		return counter, ep.ValidateRunsInMainThread()
	}).Get(ctx)
	fmt.Println(v, err)
	// Output: 11 <nil>
}
