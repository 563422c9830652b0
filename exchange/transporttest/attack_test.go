package transporttest_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/exchange/wire"
	"github.com/qexchange/qexchange/quictransport"
	"github.com/qexchange/qexchange/tcptransport"
)

// defaultSide is a consumerSide with the default segment size: the
// attack tests run the nodes with default configs.
func defaultSides() []consumerSide {
	return []consumerSide{
		{
			name:    "tcp",
			factory: func(testing.TB) exchange.TransportFactory { return tcptransport.New(tcptransport.Config{}) },
			fake: func(t testing.TB) *transporttest.FakeProducer {
				return transporttest.NewFakeTCPProducer(t, exchange.DefaultSegmentSize)
			},
		},
		{
			name:    "quic",
			factory: func(t testing.TB) exchange.TransportFactory { return quictransport.New(quicConfig(t)) },
			fake: func(t testing.TB) *transporttest.FakeProducer {
				cfg := quicConfig(t)
				return transporttest.NewFakeQUICProducer(t, exchange.DefaultSegmentSize, &tls.Config{
					Certificates: []tls.Certificate{*cfg.TLS.Certificate},
					NextProtos:   []string{quictransport.ALPN},
					ClientAuth:   tls.RequireAnyClientCert,
					MinVersion:   tls.VersionTLS13,
				}, nil)
			},
		},
	}
}

// TestAttackRecordLengthLie: a producer starts a record whose length
// prefix claims MaxRecordSize (16 MiB) on each of 48 channels, sends
// 2 MiB of it on each, with credit, and stops: 96 MiB of partial records
// (scaled down by 8 under the race detector: lengthLieSize).
// With the defaults the consumer assembles at most SpanningRecordMemory
// (64 MiB) of them; the channels that find no room fail with a
// *SpanningRecordMemoryError naming the producer; the budget is back to 0
// when the gate closes; the live heap grows by at most the budget plus
// 32 MiB; and a healthy channel into the same node keeps its throughput
// and completes.
func TestAttackRecordLengthLie(t *testing.T) {
	for _, side := range defaultSides() {
		t.Run(side.name, func(t *testing.T) {
			t.Cleanup(transporttest.CheckGoroutines(t))
			runLengthLie(t, side)
		})
	}
}

// lengthLie sizes the attack. The defaults' run (96 MiB of partial
// records against the default 64 MiB budget) is built without the race
// detector, which makes it take minutes; under it the same attack runs
// scaled down by 8 against a budget scaled down by 8.
type lengthLie struct {
	channels, perChannel int
	maxRecord            int   // the consumer's MaxRecordSize and the lie; 0: default
	budget               int64 // the consumer's SpanningRecordMemory; 0: default
}

func lengthLieSize() lengthLie {
	if raceEnabled {
		return lengthLie{channels: 24, perChannel: 512 << 10, maxRecord: 1 << 20, budget: 8 << 20}
	}
	return lengthLie{channels: 48, perChannel: 2 << 20}
}

func runLengthLie(t *testing.T, side consumerSide) {
	const seg = exchange.DefaultSegmentSize
	size := lengthLieSize()
	channels, perChannel := size.channels, size.perChannel
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := func() exchange.Config {
		return exchange.Config{Transport: side.factory(t), MaxRecordSize: size.maxRecord, SpanningRecordMemory: size.budget}
	}
	cons, prod := transporttest.NewEnv(t, ctx, cfg()), transporttest.NewEnv(t, ctx, cfg())
	fake := side.fake(t)
	healthy := startHealthy(t, ctx, prod, cons)
	before := healthy.rate()
	probe := startProbe()

	specs := make([]exchange.ChannelSpec, channels)
	index := make(map[exchange.PartitionID]int)
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: exchange.NewPartitionID(), Addr: fake.Addr()}
		index[specs[i].Partition] = i
	}
	victim, err := cons.CreateInputGate(exchange.GateConfig{Channels: specs})
	if err != nil {
		t.Fatal(err)
	}
	fakes := make([]*transporttest.FakeChannel, channels) // by the gate's channel index
	for range channels {
		c, err := fake.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fakes[index[exchange.PartitionID(c.Request.PartitionID)]] = c
	}
	claim, budget := size.maxRecord, size.budget
	if claim == 0 {
		claim, budget = exchange.DefaultMaxRecordSize, exchange.DefaultSpanningRecordMemory
	}
	start := time.Now()
	actx, stopAttack := context.WithCancel(ctx)
	var senders sync.WaitGroup
	sent := make([]chan struct{}, channels)
	seqs := make([]atomic.Int32, channels)
	for i, c := range fakes {
		sent[i] = make(chan struct{})
		senders.Add(1)
		go func() {
			defer senders.Done()
			payload := make([]byte, seg)
			binary.BigEndian.PutUint32(payload, uint32(claim)) // the lie: the rest never comes
			for seq := int32(0); int(seq)*seg < perChannel; seq++ {
				if c.TakeCredit(actx) != nil {
					return // the channel failed (no more credit) or the test is over
				}
				if c.SendBufferResponse(&wire.BufferResponse{Sequence: seq, DataType: wire.DataBuffer}, payload) != nil {
					return
				}
				seqs[i].Store(seq + 1)
				payload[0], payload[1], payload[2], payload[3] = 0xAB, 0xAB, 0xAB, 0xAB
			}
			close(sent[i])
		}()
	}
	// The victim task reads its gate; every failure must be the budget's.
	var (
		failMu  sync.Mutex
		failed  = make(map[int]bool)
		readErr = make(chan error, 1)
	)
	go func() {
		for {
			e, err := victim.Next(actx)
			var ce *exchange.ChannelError
			var me *exchange.SpanningRecordMemoryError
			switch {
			case errors.As(err, &ce) && errors.As(err, &me) && me.Peer == fake.Addr() && me.RecordSize == claim:
				failMu.Lock()
				failed[ce.Index] = true
				failMu.Unlock()
			case err != nil:
				readErr <- err
				return
			default:
				readErr <- errors.New("the victim gate returned an element: " + strings.Repeat("?", min(1, len(e.Record))))
				return
			}
		}
	}()
	// Held: every channel failed, or was sent its 2 MiB and read them all
	// (its credit is back).
	held := func() bool {
		failMu.Lock()
		defer failMu.Unlock()
		for i, c := range fakes {
			select {
			case <-sent[i]:
				if c.Credit() < int(c.Request.Credit) && !failed[i] {
					return false
				}
			default:
				if !failed[i] {
					return false
				}
			}
		}
		return true
	}
	for !held() {
		select {
		case err := <-readErr:
			t.Fatalf("victim gate: %v", err)
		case <-ctx.Done():
			var state []string
			failMu.Lock()
			for i, c := range fakes {
				done := "sending"
				select {
				case <-sent[i]:
					done = "sent"
				default:
				}
				if done == "sending" && !failed[i] {
					state = append(state, fmt.Sprintf("%d:%s/credit %d/failed %v/sent %d", i, done, c.Credit(), failed[i], seqs[i].Load()))
				}
			}
			nFailed := len(failed)
			failMu.Unlock()
			t.Fatalf("the attack did not settle: %d channels failed; spill in use %s; %s", nFailed, mib(cons.SpanningRecordMemoryInUse()), strings.Join(state, ", "))
		case <-time.After(10 * time.Millisecond): // polling the attack's state
		}
	}
	settled := time.Since(start)
	inUse := cons.SpanningRecordMemoryInUse()
	live := probe.liveGrowth()
	during := healthy.rate()
	failMu.Lock()
	nFailed := len(failed)
	failMu.Unlock()
	t.Logf("%d channels x %s sent in %v: %d failed for lack of budget, %s of spill held (budget %s), live heap +%s",
		channels, mib(int64(perChannel)), settled.Round(time.Millisecond), nFailed, mib(inUse), mib(budget), mib(live))
	if nFailed == 0 || nFailed == channels {
		t.Errorf("%d of %d channels failed; want the ones beyond the budget, not none or all", nFailed, channels)
	}
	if inUse > budget || inUse < budget/2 {
		t.Errorf("spill memory in use %s; want it up to, and near, the budget %s", mib(inUse), mib(budget))
	}
	if live > budget+32<<20 {
		t.Errorf("live heap grew by %s; want at most the budget %s + 32 MiB", mib(live), mib(budget))
	}
	stopAttack()
	senders.Wait()
	if err := <-readErr; !errors.Is(err, context.Canceled) {
		t.Errorf("victim gate: %v, want only budget failures until the test stopped it", err)
	}
	victim.Close()
	checkRatio(t, before, during, healthy.rate())
	if n := cons.SpanningRecordMemoryInUse(); n != 0 {
		t.Errorf("%d bytes of spill budget held after the gate closed", n)
	}
	probe.finish(t)
	healthy.finish(t)
}
