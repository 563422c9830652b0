package exchange

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/qexchange/qexchange/exchange/spill"
	"github.com/rs/zerolog"
)

// DefaultMaxRecordSize bounds a record when Config.MaxRecordSize is 0.
const DefaultMaxRecordSize = 16 << 20

// Config describes one node. Zero values mean the documented defaults.
type Config struct {
	// NetworkMemory is the node's network buffer memory (default 64 MiB).
	NetworkMemory int64
	// SegmentSize is the size of one network buffer (default 32 KiB,
	// minimum 4 KiB).
	SegmentSize int
	// MaxRecordSize bounds one record (default 16 MiB); larger records are
	// refused with ErrRecordTooLarge, and a received length above it is a
	// protocol error.
	MaxRecordSize int
	// SpanningRecordMemory bounds the memory the node's input channels
	// use at once to assemble records that span network buffers (default
	// 64 MiB, or 4 x MaxRecordSize if that is more; at least
	// MaxRecordSize + 4). A spill buffer grows as a record's bytes
	// arrive, takes every byte above a small per-channel allowance (4 KiB)
	// from this budget, and returns it once the record has been handed
	// out. A channel whose record finds no room fails at once with a
	// *SpanningRecordMemoryError (ErrSpanningRecordMemory); it does not
	// wait. So peers that claim MaxRecordSize on many channels and send
	// slowly hold this much memory, not channels x MaxRecordSize.
	SpanningRecordMemory int64
	// Transport creates the node's transport, e.g.
	// tcptransport.New(tcptransport.Config{}) or
	// quictransport.New(quictransport.Config{...}). Nil: no network; only
	// local channels.
	Transport TransportFactory
	// ListenAddr is the transport's listen address (default
	// "127.0.0.1:0").
	ListenAddr string
	// AdvertiseAddr is the address peers should dial to reach this node
	// (host:port), when it differs from the listening one (NAT,
	// containers). Empty: the listening address, with a wildcard host
	// (":0", "0.0.0.0", "[::]") replaced by an address of this host's
	// interfaces; Addr never reports a wildcard.
	AdvertiseAddr string
	// SpillDir is where BLOCKING partitions keep their files (default:
	// the OS temp dir; see package spill). Created at the first one.
	SpillDir string
	// Logger receives the node's logs (default: disabled).
	Logger zerolog.Logger
	// Metrics, if set, receives the node's collector (see metrics.go for
	// the names, which follow Flink's); it is unregistered on Close. Nil
	// means no metrics, at no cost on the data path. To tell several
	// nodes of one process apart, wrap it with
	// prometheus.WrapRegistererWith.
	Metrics prometheus.Registerer
}

// Environment is one node of the exchange (Flink's
// NettyShuffleEnvironment): it owns the network buffer pool, the
// partition manager and the transport.
type Environment struct {
	cfg        Config
	log        zerolog.Logger
	pool       *NetworkBufferPool
	partitions *partitionManager
	transport  Transport
	addr       string // what Addr reports: advertised, never a wildcard

	mu        sync.Mutex
	gates     map[*InputGate]struct{}
	owned     map[*ResultPartition]struct{}
	closed    bool
	closeErr  error         // set before closeDone is closed
	closeDone chan struct{} // closed when Close finished
	gateSeq   int64

	metrics *envMetrics // nil without Config.Metrics

	spanBudget *spanBudget // Config.SpanningRecordMemory (spanbudget.go)

	spillMu sync.Mutex
	spill   *spill.Manager // BLOCKING partitions' files (blocking.go)

	// fastPath: partitions' writers may append without a lock
	// (writergate.go); false where membarrier is refused.
	fastPath bool
}

// NewEnvironment sets up a node and, if a transport is named, starts
// listening.
func NewEnvironment(ctx context.Context, cfg Config) (*Environment, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pool, err := NewNetworkBufferPool(cfg.NetworkMemory, cfg.SegmentSize)
	if err != nil {
		return nil, err
	}
	e := &Environment{
		cfg:        cfg,
		log:        cfg.Logger,
		pool:       pool,
		partitions: &partitionManager{parts: make(map[PartitionID]*ResultPartition)},
		gates:      make(map[*InputGate]struct{}),
		owned:      make(map[*ResultPartition]struct{}),
		closeDone:  make(chan struct{}),
		spanBudget: &spanBudget{limit: cfg.SpanningRecordMemory},

		fastPath: fastPathAvailable(),
	}
	if cfg.Metrics != nil {
		if e.metrics, err = newEnvMetrics(e, cfg.Metrics); err != nil {
			return nil, err
		}
	}
	if cfg.Transport != nil {
		t, err := cfg.Transport(TransportOptions{ListenAddr: cfg.ListenAddr, SegmentSize: cfg.SegmentSize, Logger: cfg.Logger})
		if err != nil {
			e.stopMetrics()
			return nil, err
		}
		if err := t.Listen(ctx, e.partitions); err != nil {
			t.Close()
			e.stopMetrics()
			return nil, err
		}
		if e.addr, err = advertisedAddr(cfg.AdvertiseAddr, t.Addr()); err != nil {
			t.Close()
			e.stopMetrics()
			return nil, err
		}
		e.transport = t
	}
	return e, nil
}

// Addr is the transport's address, for ChannelSpec.Addr on other nodes.
func (e *Environment) Addr() string { return e.addr }

// Transport is the node's transport (nil without one).
func (e *Environment) Transport() Transport { return e.transport }

// BufferPool is the node's network memory.
func (e *Environment) BufferPool() *NetworkBufferPool { return e.pool }

// Logger is the node's logger.
func (e *Environment) Logger() zerolog.Logger { return e.log }

// CreatePartition creates and registers a result partition. Not enough
// memory for its minimum is an *InsufficientBuffersError.
func (e *Environment) CreatePartition(cfg PartitionConfig) (*ResultPartition, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	p, err := newResultPartition(e, cfg)
	if err != nil {
		return nil, err
	}
	if err := e.partitions.register(p); err != nil {
		p.Release()
		return nil, err
	}
	e.mu.Lock()
	e.owned[p] = struct{}{}
	e.mu.Unlock()
	return p, nil
}

// CreateInputGate creates a gate and starts requesting its channels'
// subpartitions. Not enough memory for its buffers is an
// *InsufficientBuffersError.
func (e *Environment) CreateInputGate(cfg GateConfig) (*InputGate, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	e.mu.Unlock()
	g, err := newInputGate(e, cfg)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		g.Close()
		return nil, ErrClosed
	}
	e.gates[g] = struct{}{}
	g.seq = e.gateSeq
	e.gateSeq++
	e.mu.Unlock()
	return g, nil
}

func (e *Environment) gateClosed(g *InputGate) {
	e.mu.Lock()
	delete(e.gates, g)
	e.mu.Unlock()
}

// partitionReleased forgets a released partition, so that a long-running
// node that creates partitions job after job does not keep them all.
func (e *Environment) partitionReleased(p *ResultPartition) {
	e.mu.Lock()
	delete(e.owned, p)
	e.mu.Unlock()
}

// live returns the node's partitions and open gates, for metrics.
func (e *Environment) live() ([]*ResultPartition, []*InputGate) {
	e.mu.Lock()
	defer e.mu.Unlock()
	parts := make([]*ResultPartition, 0, len(e.owned))
	for p := range e.owned {
		parts = append(parts, p)
	}
	gates := make([]*InputGate, 0, len(e.gates))
	for g := range e.gates {
		gates = append(gates, g)
	}
	return parts, gates
}

func (e *Environment) stopMetrics() {
	if e.metrics != nil {
		e.metrics.unregister()
	}
}

// Close closes every gate, the transport and every partition, and returns
// the memory. Afterwards BufferPool().Outstanding() is 0. A second call
// waits for the first to finish and returns its result.
func (e *Environment) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.closeDone
		return e.closeErr
	}
	e.closed = true
	gates := make([]*InputGate, 0, len(e.gates))
	for g := range e.gates {
		gates = append(gates, g)
	}
	parts := make([]*ResultPartition, 0, len(e.owned))
	for p := range e.owned {
		parts = append(parts, p)
	}
	e.mu.Unlock()

	var errs []error
	for _, g := range gates {
		errs = append(errs, g.Close())
	}
	if e.transport != nil {
		errs = append(errs, e.transport.Close())
	}
	for _, p := range parts {
		p.Release()
	}
	e.partitions.mu.Lock()
	e.partitions.closed = true
	e.partitions.mu.Unlock()
	errs = append(errs, e.closeSpill())
	e.stopMetrics()
	e.closeErr = errors.Join(errs...)
	close(e.closeDone)
	return e.closeErr
}
