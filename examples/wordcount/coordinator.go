package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/qexchange/qexchange/rpc"
)

type coordinatorOptions struct {
	transport, listen, secret string
	workers                   int
	input, output, job        string
	throttle                  int
	heartbeatInterval         time.Duration
	heartbeatTimeout          time.Duration
	timeout                   time.Duration
}

// workerInfo is the coordinator's view of one worker (main goroutine
// only).
type workerInfo struct {
	registration
	lastSeen time.Time
	gw       taskExecutorGW
}

// jobMaster is the coordinator's endpoint state. Every field is touched
// on the endpoint's main goroutine only: no locks.
type jobMaster struct {
	o       coordinatorOptions
	svc     *rpc.Service
	ep      *rpc.Endpoint
	stdout  io.Writer
	workers map[string]*workerInfo
	order   []string
	pending map[string]bool // tasks not yet finished
	started bool
	ended   bool
	outcome chan error // one value: nil on success
}

func runCoordinator(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coordinator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o coordinatorOptions
	fs.StringVar(&o.transport, "transport", "tcp", "transport of the data plane and the control plane: tcp or quic")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "control plane address")
	fs.StringVar(&o.secret, "secret", "wordcount", "shared secret the TLS certificate is derived from")
	fs.IntVar(&o.workers, "workers", 3, "workers to wait for")
	fs.StringVar(&o.input, "input", "", "text file to count (required; every worker reads it)")
	fs.StringVar(&o.output, "output", "wordcount-out", "directory for the counters' part-N files")
	fs.StringVar(&o.job, "job", "wordcount", "job name (partition ids derive from it)")
	fs.IntVar(&o.throttle, "throttle", 0, "words per second per source (0: unlimited)")
	fs.DurationVar(&o.heartbeatInterval, "heartbeat-interval", 200*time.Millisecond, "how often workers heartbeat")
	fs.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", time.Second, "a worker silent this long is dead")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "the whole job's limit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "wordcount coordinator: "+format+"\n", a...)
		return 1
	}
	if o.input == "" || o.workers < 1 || o.heartbeatInterval <= 0 || o.heartbeatTimeout <= o.heartbeatInterval {
		return fail("need -input, -workers >= 1 and 0 < -heartbeat-interval < -heartbeat-timeout")
	}
	if err := os.MkdirAll(o.output, 0o755); err != nil {
		return fail("%v", err)
	}
	o.input, _ = filepath.Abs(o.input)
	o.output, _ = filepath.Abs(o.output)
	m, err := deriveTLS(o.secret)
	if err != nil {
		return fail("%v", err)
	}
	svc, err := newRPCService(o.transport, o.listen, m)
	if err != nil {
		return fail("%v", err)
	}
	defer svc.Close()
	jm := &jobMaster{o: o, svc: svc, stdout: stdout, workers: map[string]*workerInfo{}, pending: map[string]bool{}, outcome: make(chan error, 1)}
	if jm.ep, err = svc.NewEndpoint(rpc.EndpointConfig{ID: jobMasterID, Gateway: jobMasterGateway, OnStart: jm.onStart}); err != nil {
		return fail("%v", err)
	}
	if err := errors.Join(
		rpc.Register(jm.ep, "registerWorker", jm.registerWorker),
		rpc.Register(jm.ep, "heartbeat", jm.heartbeat),
		rpc.Register(jm.ep, "taskFinished", jm.taskFinished),
	); err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := jm.ep.Start(ctx); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "coordinator listening %s %s\n", o.transport, svc.Addr())

	var jobErr error
	select {
	case jobErr = <-jm.outcome:
	case <-ctx.Done():
		jobErr = fmt.Errorf("job did not finish within %v (-timeout)", o.timeout)
	}
	// Tell every worker to end, in parallel, each bounded.
	workers, _ := rpc.CallAsync(context.Background(), jm.ep, func() ([]*workerInfo, error) {
		ws := make([]*workerInfo, 0, len(jm.order))
		for _, id := range jm.order {
			ws = append(ws, jm.workers[id])
		}
		return ws, nil
	}).Get(context.Background())
	var wg sync.WaitGroup
	for _, w := range workers {
		if w.gw.Gateway == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, ccancel := context.WithTimeout(context.Background(), time.Second)
			defer ccancel()
			if jobErr == nil {
				_ = w.gw.shutdown(cctx)
			} else {
				_ = w.gw.cancelJob(cctx, jobErr.Error())
			}
		}()
	}
	wg.Wait()
	if jobErr != nil {
		return fail("job FAILED: %v", jobErr)
	}
	fmt.Fprintf(stdout, "job finished: counts in %s/part-*\n", o.output)
	return 0
}

// onStart schedules the heartbeat check on the main goroutine.
func (jm *jobMaster) onStart(context.Context) error {
	jm.scheduleHeartbeatCheck()
	return nil
}

func (jm *jobMaster) scheduleHeartbeatCheck() {
	jm.ep.ScheduleRunAsync(jm.o.heartbeatInterval/2, func() {
		now := time.Now()
		for _, id := range jm.order {
			w := jm.workers[id]
			if silent := now.Sub(w.lastSeen); silent > jm.o.heartbeatTimeout {
				jm.end(fmt.Errorf("worker %s (pid %d, %s) lost: no heartbeat for %v (timeout %v)",
					id, w.PID, w.RPCAddr, silent.Round(time.Millisecond), jm.o.heartbeatTimeout))
			}
		}
		if !jm.ended {
			jm.scheduleHeartbeatCheck()
		}
	})
}

// end records the job's outcome once.
func (jm *jobMaster) end(err error) {
	if jm.ended {
		return
	}
	jm.ended = true
	if err != nil {
		fmt.Fprintf(jm.stdout, "job failing: %v\n", err)
	}
	jm.outcome <- err
}

func (jm *jobMaster) registerWorker(_ context.Context, r registration) (registered, error) {
	if _, dup := jm.workers[r.Worker]; dup {
		return registered{}, fmt.Errorf("a worker named %s is already registered", r.Worker)
	}
	if jm.started {
		return registered{}, fmt.Errorf("job already deployed on %d workers", len(jm.order))
	}
	jm.workers[r.Worker] = &workerInfo{registration: r, lastSeen: time.Now()}
	jm.order = append(jm.order, r.Worker)
	fmt.Fprintf(jm.stdout, "worker %s registered (pid %d, rpc %s, data %s)\n", r.Worker, r.PID, r.RPCAddr, r.DataAddr)
	if len(jm.order) == jm.o.workers {
		jm.started = true
		ws := make([]registration, len(jm.order))
		for i, id := range jm.order {
			ws[i] = jm.workers[id].registration
		}
		// Deploying calls the workers: not on the main goroutine, which
		// must keep serving heartbeats.
		go jm.deploy(ws)
	}
	return registered{HeartbeatInterval: jm.o.heartbeatInterval}, nil
}

func (jm *jobMaster) heartbeat(_ context.Context, h heartbeat) (ack, error) {
	w, ok := jm.workers[h.Worker]
	if !ok {
		return ack{}, fmt.Errorf("unknown worker %s", h.Worker)
	}
	w.lastSeen = time.Now()
	return ack{}, nil
}

func (jm *jobMaster) taskFinished(_ context.Context, r taskReport) (ack, error) {
	if r.Failed {
		// A task that lost a producer may only be the echo of a dead
		// worker: give the heartbeat monitor the time to name it first.
		err := fmt.Errorf("task %s on worker %s failed: %s", r.Task, r.Worker, r.Error)
		fmt.Fprintf(jm.stdout, "%v\n", err)
		jm.ep.ScheduleRunAsync(2*jm.o.heartbeatTimeout, func() { jm.end(err) })
		return ack{}, nil
	}
	fmt.Fprintf(jm.stdout, "task %s on worker %s finished: %d words\n", r.Task, r.Worker, r.Words)
	delete(jm.pending, r.Task)
	if len(jm.pending) == 0 {
		jm.end(nil)
	}
	return ack{}, nil
}

// deploy connects to every worker and submits one source and one counter
// to each; sources first, so counters find their partitions sooner.
func (jm *jobMaster) deploy(ws []registration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fail := func(err error) { _ = jm.ep.RunAsync(func() { jm.end(err) }) }
	gws := make([]taskExecutorGW, len(ws))
	for i, w := range ws {
		g, err := jm.svc.Connect(ctx, w.RPCAddr, taskExecutorID, taskExecutorGateway)
		if err != nil {
			fail(fmt.Errorf("connecting to worker %s: %w", w.Worker, err))
			return
		}
		gws[i] = taskExecutorGW{g}
	}
	n := len(ws)
	var tasks []deployment
	for i := range n {
		tasks = append(tasks, deployment{Job: jm.o.job, Task: fmt.Sprintf("source-%d", i), Kind: "source", Index: i,
			Sources: n, Counters: n, Input: jm.o.input, Throttle: jm.o.throttle})
	}
	for j := range n {
		producers := make([]string, n)
		for i := range n {
			if i != j { // source i runs on worker i
				producers[i] = ws[i].DataAddr
			}
		}
		tasks = append(tasks, deployment{Job: jm.o.job, Task: fmt.Sprintf("counter-%d", j), Kind: "counter", Index: j,
			Sources: n, Counters: n, Output: jm.o.output, Producers: producers})
	}
	// Record the gateways and the pending tasks before the first task
	// can report.
	if _, err := rpc.CallAsync(ctx, jm.ep, func() (struct{}, error) {
		for i, w := range ws {
			jm.workers[w.Worker].gw = gws[i]
		}
		for _, t := range tasks {
			jm.pending[t.Task] = true
		}
		return struct{}{}, nil
	}).Get(ctx); err != nil {
		fail(err)
		return
	}
	for _, t := range tasks {
		w := t.Index // task i of each kind runs on worker i
		if err := gws[w].submitTask(ctx, t); err != nil {
			fail(fmt.Errorf("deploying %s to worker %s: %w", t.Task, ws[w].Worker, err))
			return
		}
	}
	fmt.Fprintf(jm.stdout, "deployed %d tasks on %d workers\n", len(tasks), n)
}
