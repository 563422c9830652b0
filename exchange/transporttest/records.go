package transporttest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/qexchange/qexchange/exchange"
)

// xxhash64 of everything before it. Minimum 24 bytes.
const recordOverhead = 24

func makeRecord(buf []byte, producer, sub int, seq uint64, size int, rng *rand.Rand) []byte {
	rec := buf[:size]
	binary.BigEndian.PutUint32(rec, uint32(producer))
	binary.BigEndian.PutUint32(rec[4:], uint32(sub))
	binary.BigEndian.PutUint64(rec[8:], seq)
	for i := 16; i < size-8; i++ {
		rec[i] = byte(seq) ^ byte(i)
	}
	binary.BigEndian.PutUint64(rec[size-8:], xxhash.Sum64(rec[:size-8]))
	return rec
}

// recordSize draws a mixed size: mostly small, some KiB, a few larger
// than a segment.
func recordSize(rng *rand.Rand) int {
	switch r := rng.IntN(1000); {
	case r < 800:
		return recordOverhead + rng.IntN(200)
	case r < 990:
		return recordOverhead + rng.IntN(4096)
	default:
		return segmentSize + rng.IntN(3*segmentSize)
	}
}

// verifier checks what one gate receives, per channel.
type verifier struct {
	specs    []exchange.ChannelSpec
	producer []int // producer index of each channel
	next     []uint64
	records  int
	bytes    int64
}

func newVerifier(specs []exchange.ChannelSpec, producer []int) *verifier {
	return &verifier{specs: specs, producer: producer, next: make([]uint64, len(specs))}
}

func (v *verifier) check(e exchange.Element) error {
	r := e.Record
	if len(r) < recordOverhead {
		return fmt.Errorf("channel %d: record of %d bytes", e.Channel, len(r))
	}
	if got := binary.BigEndian.Uint64(r[len(r)-8:]); got != xxhash.Sum64(r[:len(r)-8]) {
		return fmt.Errorf("channel %d: checksum mismatch in record %d", e.Channel, v.next[e.Channel])
	}
	p, sub, seq := int(binary.BigEndian.Uint32(r)), int(binary.BigEndian.Uint32(r[4:])), binary.BigEndian.Uint64(r[8:])
	if p != v.producer[e.Channel] || sub != v.specs[e.Channel].Subpartition {
		return fmt.Errorf("channel %d: record from producer %d subpartition %d, want %d/%d", e.Channel, p, sub, v.producer[e.Channel], v.specs[e.Channel].Subpartition)
	}
	if seq != v.next[e.Channel] {
		return fmt.Errorf("channel %d: record %d arrived, want %d (lost, duplicated or reordered)", e.Channel, seq, v.next[e.Channel])
	}
	v.next[e.Channel]++
	v.records++
	v.bytes += int64(len(r))
	return nil
}

// drain reads g to io.EOF, verifying every record; it returns the
// number of EndOfPartition events seen.
func (v *verifier) drain(ctx context.Context, g *exchange.InputGate) (int, error) {
	eops := 0
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			return eops, nil
		}
		if err != nil {
			return eops, err
		}
		if e.Event != nil {
			if _, ok := e.Event.(exchange.EndOfPartition); ok {
				eops++
			}
			continue
		}
		if err := v.check(e); err != nil {
			return eops, err
		}
	}
}

// subFromRecord is a selector that routes by the subpartition field, so
// the RecordWriter's selector path is what is tested.
type subFromRecord struct{}

func (subFromRecord) SelectChannel(r []byte, n int) int { return int(binary.BigEndian.Uint32(r[4:])) }
func (subFromRecord) IsBroadcast() bool                 { return false }

// produce writes count records spread over the partition's subpartitions
// and finishes it. It returns the per-subpartition counts.
func produce(ctx context.Context, p *exchange.ResultPartition, producer, count int, seed uint64) ([]uint64, error) {
	w := exchange.NewRecordWriter(p, subFromRecord{})
	rng := rand.New(rand.NewPCG(seed, uint64(producer)))
	buf := make([]byte, 4*segmentSize+recordOverhead)
	seqs := make([]uint64, p.Subpartitions())
	for i := 0; i < count; i++ {
		sub := rng.IntN(p.Subpartitions())
		rec := makeRecord(buf, producer, sub, seqs[sub], recordSize(rng), rng)
		if err := w.Emit(ctx, rec); err != nil {
			return seqs, fmt.Errorf("producer %d record %d: %w", producer, i, err)
		}
		seqs[sub]++
	}
	return seqs, w.Finish(ctx)
}

// everySubpartition is one channel per subpartition of p, read from addr.
func everySubpartition(p *exchange.ResultPartition, addr string) []exchange.ChannelSpec {
	specs := make([]exchange.ChannelSpec, p.Subpartitions())
	for i := range specs {
		specs[i] = exchange.ChannelSpec{Partition: p.ID(), Subpartition: i, Addr: addr}
	}
	return specs
}

// readNumbered reads g to io.EOF; every channel must deliver records
// numbered 0..perChannel-1 in order (a big-endian u32 at the start of
// each record).
func readNumbered(t *testing.T, ctx context.Context, g *exchange.InputGate, perChannel int) {
	t.Helper()
	next := make([]int, g.NumChannels())
	for {
		e, err := g.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if e.Event != nil {
			continue
		}
		if k := int(binary.BigEndian.Uint32(e.Record)); k != next[e.Channel] {
			t.Fatalf("channel %d: record %d, want %d", e.Channel, k, next[e.Channel])
		}
		next[e.Channel]++
	}
	for i, c := range next {
		if c != perChannel {
			t.Fatalf("channel %d got %d records, want %d", i, c, perChannel)
		}
	}
}

// EmitUntilStopped emits 64-byte records to subpartition sub of p on a
// goroutine, as fast as p takes them, until stop is called or an emit
// fails; stop returns once the goroutine has.
func EmitUntilStopped(ctx context.Context, p *exchange.ResultPartition, sub int) (stop func()) {
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec := make([]byte, 64)
		for p.EmitTo(wctx, sub, rec) == nil {
		}
	}()
	return func() { cancel(); <-done }
}
