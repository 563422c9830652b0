package partitionstate

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/rpc"
)

// Endpoint id and gateway type of the Tracker.
const (
	EndpointID  = "partitions"
	GatewayType = "PartitionStateGateway"
)

// State is a partition's state as the coordinator knows it.
type State uint8

const (
	// Unknown: the coordinator has heard nothing of the partition.
	Unknown State = iota
	// Deploying: the producer is scheduled or starting.
	Deploying
	// Consumable: the producer has written data.
	Consumable
	// Finished: the producer has written everything; the partition is
	// held until consumed.
	Finished
	// Released: consumed and released: it will not come back.
	Released
	// Failed: the producer failed; Status.Reason says why.
	Failed
)

func (s State) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Deploying:
		return "deploying"
	case Consumable:
		return "consumable"
	case Finished:
		return "finished"
	case Released:
		return "released"
	case Failed:
		return "failed"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Retry reports whether a consumer that got PartitionNotFound should keep
// requesting the partition.
func (s State) Retry() bool { return s != Released && s != Failed }

// Report is a state change of one partition.
type Report struct {
	Partition exchange.PartitionID
	Producer  string // the producer task or node, for messages
	State     State
	Reason    string // Failed: why
}

// Status is what the coordinator knows of a partition.
type Status struct {
	State    State
	Producer string
	Reason   string
}

// Errors of CheckPartitionState.
var (
	ErrProducerFailed    = errors.New("partitionstate: producer failed")
	ErrPartitionReleased = errors.New("partitionstate: partition released")
)

// ProducerError says why a consumer should stop waiting for a partition.
// It matches ErrProducerFailed or ErrPartitionReleased.
type ProducerError struct {
	Partition exchange.PartitionID
	Status    Status
}

func (e *ProducerError) Error() string {
	if e.Status.State == Failed {
		return fmt.Sprintf("partitionstate: producer %s of partition %s failed: %s", e.Status.Producer, e.Partition, e.Status.Reason)
	}
	return fmt.Sprintf("partitionstate: partition %s of producer %s was released", e.Partition, e.Status.Producer)
}

func (e *ProducerError) Is(target error) bool {
	return (target == ErrProducerFailed && e.Status.State == Failed) ||
		(target == ErrPartitionReleased && e.Status.State == Released)
}

// Tracker is the coordinator's registry of partition states, an rpc
// endpoint. Its map is touched on the endpoint's main goroutine only.
type Tracker struct {
	ep    *rpc.Endpoint
	parts map[exchange.PartitionID]*Status
	// MaxPartitions bounds the registry against a hostile reporter.
	max int
}

// DefaultMaxPartitions bounds a Tracker's registry.
const DefaultMaxPartitions = 1 << 20

// NewTracker creates and starts the Tracker endpoint (EndpointID) on svc.
func NewTracker(ctx context.Context, svc *rpc.Service) (*Tracker, error) {
	t := &Tracker{parts: map[exchange.PartitionID]*Status{}, max: DefaultMaxPartitions}
	ep, err := svc.NewEndpoint(rpc.EndpointConfig{ID: EndpointID, Gateway: GatewayType})
	if err != nil {
		return nil, err
	}
	t.ep = ep
	if err := errors.Join(
		rpc.Register(ep, "report", func(_ context.Context, r Report) (struct{}, error) { return struct{}{}, t.apply(r) }),
		rpc.Register(ep, "state", func(_ context.Context, id exchange.PartitionID) (Status, error) { return t.status(id), nil }),
	); err != nil {
		return nil, err
	}
	if err := ep.Start(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

// Endpoint returns the Tracker's endpoint (to terminate it).
func (t *Tracker) Endpoint() *rpc.Endpoint { return t.ep }

// apply records r (main goroutine).
func (t *Tracker) apply(r Report) error {
	if r.State == Unknown || r.State > Failed {
		return fmt.Errorf("partitionstate: cannot report state %s", r.State)
	}
	s, ok := t.parts[r.Partition]
	if !ok {
		if len(t.parts) >= t.max {
			return fmt.Errorf("partitionstate: %d partitions tracked (the maximum)", t.max)
		}
		s = &Status{}
		t.parts[r.Partition] = s
	}
	if s.State == Failed || (r.State < s.State && r.State != Failed) {
		return nil // final, or late news
	}
	s.State = r.State
	if r.Producer != "" {
		s.Producer = r.Producer
	}
	s.Reason = r.Reason
	return nil
}

func (t *Tracker) status(id exchange.PartitionID) Status {
	if s, ok := t.parts[id]; ok {
		return *s
	}
	return Status{}
}

// Report records r from the coordinator itself, e.g. Deploying when it
// deploys the producer.
func (t *Tracker) Report(ctx context.Context, r Report) error {
	_, err := rpc.CallAsync(ctx, t.ep, func() (struct{}, error) { return struct{}{}, t.apply(r) }).Get(ctx)
	return err
}

// ProducerFailed marks every partition of producer that is not released
// as failed with reason (the coordinator lost the producer's worker).
func (t *Tracker) ProducerFailed(ctx context.Context, producer, reason string) error {
	_, err := rpc.CallAsync(ctx, t.ep, func() (struct{}, error) {
		for _, s := range t.parts {
			if s.Producer == producer && s.State != Released {
				s.State, s.Reason = Failed, reason
			}
		}
		return struct{}{}, nil
	}).Get(ctx)
	return err
}

// Client is a node's gateway to the coordinator's Tracker.
type Client struct{ g *rpc.Gateway }

// Connect connects to the Tracker at addr.
func Connect(ctx context.Context, svc *rpc.Service, addr string) (*Client, error) {
	g, err := svc.Connect(ctx, addr, EndpointID, GatewayType)
	if err != nil {
		return nil, err
	}
	return &Client{g}, nil
}

// Report sends a state change.
func (c *Client) Report(ctx context.Context, r Report) error {
	_, err := rpc.Call[Report, struct{}](ctx, c.g, "report", r)
	return err
}

// PartitionState asks for a partition's state (Flink's
// requestPartitionState).
func (c *Client) PartitionState(ctx context.Context, id exchange.PartitionID) (Status, error) {
	return rpc.Call[exchange.PartitionID, Status](ctx, c.g, "state", id)
}

// CheckPartitionState is the consumer's hook, asked when a partition
// request got PartitionNotFound: nil means keep retrying; a
// *ProducerError means fail the channel now. A coordinator that cannot
// answer is no reason to fail: the error is then nil and the caller
// retries as it would without a coordinator.
func (c *Client) CheckPartitionState(ctx context.Context, id exchange.PartitionID) error {
	s, err := c.PartitionState(ctx, id)
	if err != nil || s.State.Retry() {
		return nil
	}
	return &ProducerError{Partition: id, Status: s}
}
