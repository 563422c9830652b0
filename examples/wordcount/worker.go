package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/rpc"
)

// taskExecutor is a worker's endpoint. Tasks run on goroutines of their
// own (they block on the exchange); the endpoint's main goroutine only
// accepts them and the coordinator's commands.
type taskExecutor struct {
	id    string
	env   *exchange.Environment
	jm    jobMasterGW
	ctx   context.Context // the job: cancelled by cancelJob
	stop  context.CancelCauseFunc
	tasks sync.WaitGroup
	exit  chan int // the process's exit code, once
	once  sync.Once
}

func runWorker(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		id, coordinator, transport, listen, dataListen, secret string
	)
	fs.StringVar(&id, "id", "", "worker name (required, unique)")
	fs.StringVar(&coordinator, "coordinator", "", "the coordinator's control plane address (required)")
	fs.StringVar(&transport, "transport", "tcp", "transport of the data plane and the control plane: tcp or quic")
	fs.StringVar(&listen, "listen", "127.0.0.1:0", "control plane address")
	fs.StringVar(&dataListen, "data-listen", "127.0.0.1:0", "data plane (exchange) address")
	fs.StringVar(&secret, "secret", "wordcount", "shared secret the TLS certificate is derived from")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "wordcount worker %s: "+format+"\n", append([]any{id}, a...)...)
		return 1
	}
	if id == "" || coordinator == "" {
		return fail("need -id and -coordinator")
	}
	m, err := deriveTLS(secret)
	if err != nil {
		return fail("%v", err)
	}
	svc, err := newRPCService(transport, listen, m)
	if err != nil {
		return fail("%v", err)
	}
	defer svc.Close()
	env, err := newEnvironment(context.Background(), transport, dataListen, m)
	if err != nil {
		return fail("%v", err)
	}
	defer closeBounded(env)

	te := &taskExecutor{id: id, env: env, exit: make(chan int, 1)}
	te.ctx, te.stop = context.WithCancelCause(context.Background())
	defer te.stop(nil)
	ep, err := svc.NewEndpoint(rpc.EndpointConfig{ID: taskExecutorID, Gateway: taskExecutorGateway})
	if err != nil {
		return fail("%v", err)
	}
	if err := errors.Join(
		rpc.Register(ep, "submitTask", te.submitTask),
		rpc.Register(ep, "cancelJob", te.cancelJob),
		rpc.Register(ep, "shutdown", func(context.Context, ack) (ack, error) { te.end(0); return ack{}, nil }),
	); err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// te.jm is set before Start: submitTask's goroutines read it, and
	// Start is what orders this goroutine's writes before them.
	g, err := svc.Connect(ctx, coordinator, jobMasterID, jobMasterGateway)
	if err != nil {
		return fail("connecting to the coordinator: %v", err)
	}
	te.jm = jobMasterGW{g}
	if err := ep.Start(ctx); err != nil {
		return fail("%v", err)
	}
	reg, err := te.jm.registerWorker(ctx, registration{Worker: id, PID: os.Getpid(), RPCAddr: svc.Addr(), DataAddr: env.Addr()})
	if err != nil {
		return fail("registering: %v", err)
	}
	fmt.Fprintf(stdout, "worker %s registered (rpc %s, data %s)\n", id, svc.Addr(), env.Addr())
	go te.heartbeats(reg.HeartbeatInterval)

	code := <-te.exit
	te.stop(errors.New("worker ending"))
	waitBounded(&te.tasks, 2*time.Second)
	return code
}

// heartbeats reports to the coordinator until the worker ends; a
// coordinator unreachable for 5 intervals (at least 2 s) ends the worker:
// no orphan outlives its job.
func (te *taskExecutor) heartbeats(interval time.Duration) {
	limit := max(5*interval, 2*time.Second)
	lastOK := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-te.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(te.ctx, interval)
		err := te.jm.heartbeat(ctx, heartbeat{Worker: te.id})
		cancel()
		if err == nil {
			lastOK = time.Now()
		} else if time.Since(lastOK) > limit {
			fmt.Fprintf(os.Stderr, "wordcount worker %s: lost the coordinator: %v\n", te.id, err)
			te.end(1)
			return
		}
	}
}

func (te *taskExecutor) end(code int) {
	te.once.Do(func() { te.exit <- code })
}

func (te *taskExecutor) cancelJob(_ context.Context, c cancelJob) (ack, error) {
	fmt.Fprintf(os.Stderr, "wordcount worker %s: job cancelled: %s\n", te.id, c.Reason)
	te.stop(errors.New("job cancelled: " + c.Reason))
	te.end(1)
	return ack{}, nil
}

func (te *taskExecutor) submitTask(_ context.Context, d deployment) (ack, error) {
	if te.ctx.Err() != nil {
		return ack{}, fmt.Errorf("worker %s is ending", te.id)
	}
	if d.Kind != "source" && d.Kind != "counter" {
		return ack{}, fmt.Errorf("unknown task kind %q", d.Kind)
	}
	te.tasks.Add(1)
	go func() {
		defer te.tasks.Done()
		r := taskReport{Worker: te.id, Task: d.Task}
		var err error
		if d.Kind == "source" {
			r.Words, err = runSource(te.ctx, te.env, d)
		} else {
			r.Words, r.Distinct, err = runCounter(te.ctx, te.env, d)
		}
		if err != nil {
			if te.ctx.Err() != nil {
				return // cancelled: nobody waits for the report
			}
			r.Failed, r.Error = true, err.Error()
		}
		ctx, cancel := context.WithTimeout(te.ctx, 5*time.Second)
		defer cancel()
		if err := te.jm.taskFinished(ctx, r); err != nil && te.ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "wordcount worker %s: reporting %s: %v\n", te.id, d.Task, err)
		}
	}()
	return ack{}, nil
}

// closeBounded closes env, waiting at most a second: tearing down a
// connection to a dead peer must not hold the process.
func closeBounded(env *exchange.Environment) {
	done := make(chan struct{})
	go func() { env.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
