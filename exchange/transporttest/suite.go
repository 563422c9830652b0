package transporttest

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// Options configures the suite for one transport.
type Options struct {
	// Name is the transport's name, as registered in the environments.
	Name string
	// Factory returns the factory for one node's transport; the suite
	// calls it once per environment.
	Factory func(t testing.TB) exchange.TransportFactory
	// ScaleChannels is the channel count of the many-channels test
	// (default 512).
	ScaleChannels int
	// Records is the record count of the exactly-once test (default
	// 100,000; at least that many are needed to pass the issue).
	Records int

	// Proxy, if set, puts a fault proxy in front of a producer node at
	// target (its Addr): consumers' channels name the proxy's Addr, so the
	// transport needs no hooks. Run and RunFaults then check delivery
	// through the proxy (with whatever loss it injects) and that a Cut
	// fails every channel through it. See faultproxy for TCP and UDP
	// proxies that satisfy Proxy.
	Proxy func(t testing.TB, target string) Proxy
	// CutDetection bounds the time from Proxy.Cut until every channel
	// through the proxy has failed (default 5s). A transport that detects
	// a silent link only by an idle timeout needs a short one in Factory.
	CutDetection time.Duration
}

// Proxy is a fault injector between consumers and one producer node.
type Proxy interface {
	// Addr is the address consumers dial instead of the producer's.
	Addr() string
	// Cut breaks the path now and for good, as a failed link or a killed
	// middlebox would: TCP connections are reset, UDP datagrams vanish.
	Cut()
	// Close stops the proxy and waits for its goroutines.
	Close() error
}

func (o *Options) withDefaults() {
	if o.ScaleChannels == 0 {
		o.ScaleChannels = 512
	}
	if o.Records == 0 {
		o.Records = 100_000
	}
	if o.CutDetection == 0 {
		o.CutDetection = 5 * time.Second
	}
}

// property is one named check of the suite.
type property struct {
	name string
	run  func(*suite, *testing.T)
}

// properties are the checks Run makes on every transport, grouped by file:
// exactlyonce.go, backpressure.go, failures.go, events.go, scale.go.
var properties = []property{
	{"ExactlyOnceInOrder", (*suite).testExactlyOnce},
	{"ExactlyOnceNoExclusiveBuffers", (*suite).testExactlyOnceNoExclusive},
	{"FlushEveryRecord", (*suite).testFlushEveryRecord},
	{"Broadcast", (*suite).testBroadcast},
	{"StalledConsumerDoesNotSlowOthers", (*suite).testStalledConsumer},
	{"CancelAndCloseRelease", (*suite).testCancelAndClose},
	{"PartitionNotFound", (*suite).testPartitionNotFound},
	{"LateProducer", (*suite).testLateProducer},
	{"ProducerFailure", (*suite).testProducerFailure},
	{"ProducerNodeDies", (*suite).testProducerNodeDies},
	{"ProducerReleasesPartition", (*suite).testProducerReleases},
	{"SecondConsumerRejected", (*suite).testSecondConsumer},
	{"Events", (*suite).testEvents},
	{"ManyChannels", (*suite).testManyChannels},
	{"BlockingReadAgain", (*suite).testBlockingReadAgain},
	{"CompressedRoundTrip", (*suite).testCompressedRoundTrip},
	{"RandomNotCompressed", (*suite).testRandomNotCompressed},
}

// faultProperties need Options.Proxy (faults.go).
var faultProperties = []property{
	{"ExactlyOnceThroughProxy", (*suite).testExactlyOnceThroughProxy},
	{"CutFailsEveryChannel", (*suite).testCutFailsEveryChannel},
}

// Run runs the whole suite, and the fault properties when o.Proxy is set.
// Every property runs as a subtest that must leave every network pool
// empty and no goroutine of this module or of quic-go behind.
func Run(t *testing.T, o Options) {
	o.withDefaults()
	s := &suite{o: o}
	s.runAll(t, properties)
	if o.Proxy != nil {
		s.runAll(t, faultProperties)
	}
}

// RunFaults runs only the properties that need a fault proxy; o.Proxy is
// required.
func RunFaults(t *testing.T, o Options) {
	if o.Proxy == nil {
		t.Fatal("transporttest.RunFaults: Options.Proxy is required")
	}
	o.withDefaults()
	(&suite{o: o}).runAll(t, faultProperties)
}

func (s *suite) runAll(t *testing.T, ps []property) {
	for _, p := range ps {
		t.Run(p.name, func(t *testing.T) {
			// Registered first, so it runs after every other cleanup:
			// after the environments are closed and their pools checked.
			t.Cleanup(CheckGoroutines(t))
			p.run(s, t)
		})
	}
}

type suite struct{ o Options }

// segmentSize is small so that records span segments often.
const segmentSize = 8 << 10

// env creates a node whose leaks are checked when the test ends.
func (s *suite) env(t *testing.T, memory int64) *exchange.Environment {
	t.Helper()
	if memory == 0 {
		memory = 8 << 20
	}
	return s.envWith(t, exchange.Config{NetworkMemory: memory})
}

// envWith is env with cfg's other fields (SegmentSize and Transport are
// the suite's).
func (s *suite) envWith(t *testing.T, cfg exchange.Config) *exchange.Environment {
	t.Helper()
	cfg.SegmentSize, cfg.Transport = segmentSize, s.o.Factory(t)
	return NewEnv(t, context.Background(), cfg)
}

// newPartition creates a partition on env or fails t.
func newPartition(t *testing.T, env *exchange.Environment, cfg exchange.PartitionConfig) *exchange.ResultPartition {
	t.Helper()
	p, err := env.CreatePartition(cfg)
	if err != nil {
		t.Fatalf("CreatePartition: %v", err)
	}
	return p
}

// newGate creates an input gate on env or fails t.
func newGate(t *testing.T, env *exchange.Environment, cfg exchange.GateConfig) *exchange.InputGate {
	t.Helper()
	g, err := env.CreateInputGate(cfg)
	if err != nil {
		t.Fatalf("CreateInputGate: %v", err)
	}
	return g
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Record layout: producer u32 | subpartition u32 | seq u64 | filler |
// xxhash64 of everything before it. Minimum 24 bytes.

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or ctx ends: for effects that arrive
// asynchronously with no event to wait on.
func waitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached before the deadline")
		case <-time.After(time.Millisecond):
		}
		runtime.Gosched()
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
