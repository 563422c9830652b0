package main

import (
	"context"
	"time"

	"github.com/qexchange/qexchange/rpc"
)

// The control plane of the job: the coordinator's JobMaster endpoint and
// every worker's TaskExecutor endpoint, with typed gateways over
// rpc.Call (Flink's JobMasterGateway and TaskExecutorGateway).
const (
	jobMasterID         = "jobmaster"
	jobMasterGateway    = "JobMasterGateway"
	taskExecutorID      = "taskexecutor"
	taskExecutorGateway = "TaskExecutorGateway"
)

// registration is a worker's RegisterWorker request.
type registration struct {
	Worker   string // the worker's name, as given by -id
	PID      int
	RPCAddr  string // its TaskExecutor endpoint
	DataAddr string // its exchange environment
}

type registered struct {
	HeartbeatInterval time.Duration
}

type heartbeat struct{ Worker string }

type ack struct{}

// deployment is one task the coordinator submits to a worker.
type deployment struct {
	Job   string
	Task  string // "source-0", "counter-2", ...
	Kind  string // "source" or "counter"
	Index int
	// Sources and Counters are the job's parallelism.
	Sources, Counters int
	// Input is the text file (sources); Output the result directory
	// (counters).
	Input, Output string
	// Throttle limits a source to so many words per second (0: none).
	Throttle int
	// Producers[i] is the data address of source i's worker, "" when it
	// runs on the counter's own worker (a local channel).
	Producers []string
}

// taskReport is what a task tells the coordinator when it ends.
type taskReport struct {
	Worker, Task string
	Failed       bool
	Error        string
	Words        int64 // emitted (sources) or counted (counters)
	Distinct     int   // counters: distinct words written
}

type cancelJob struct{ Reason string }

// jobMasterGW is the typed client of the coordinator.
type jobMasterGW struct{ *rpc.Gateway }

func (g jobMasterGW) registerWorker(ctx context.Context, r registration) (registered, error) {
	return rpc.Call[registration, registered](ctx, g.Gateway, "registerWorker", r)
}

func (g jobMasterGW) heartbeat(ctx context.Context, h heartbeat) error {
	_, err := rpc.Call[heartbeat, ack](ctx, g.Gateway, "heartbeat", h)
	return err
}

func (g jobMasterGW) taskFinished(ctx context.Context, r taskReport) error {
	_, err := rpc.Call[taskReport, ack](ctx, g.Gateway, "taskFinished", r)
	return err
}

// taskExecutorGW is the typed client of a worker.
type taskExecutorGW struct{ *rpc.Gateway }

func (g taskExecutorGW) submitTask(ctx context.Context, d deployment) error {
	_, err := rpc.Call[deployment, ack](ctx, g.Gateway, "submitTask", d)
	return err
}

func (g taskExecutorGW) cancelJob(ctx context.Context, reason string) error {
	_, err := rpc.Call[cancelJob, ack](ctx, g.Gateway, "cancelJob", cancelJob{reason})
	return err
}

func (g taskExecutorGW) shutdown(ctx context.Context) error {
	_, err := rpc.Call[ack, ack](ctx, g.Gateway, "shutdown", ack{})
	return err
}
