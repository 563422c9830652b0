package transporttest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// sendAndCheck writes records into a one-subpartition pipelined partition
// with LZ4 compression, reads them remotely and checks each one; it
// returns the partition's compression counters.
func (s *suite) sendAndCheck(t *testing.T, records [][]byte) exchange.CompressionStats {
	ctx := testContext(t, 60*time.Second)
	prodEnv, consEnv := s.env(t, 0), s.env(t, 0)
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 1, Compression: exchange.CompressionLZ4})
	g := newGate(t, consEnv, exchange.GateConfig{Channels: everySubpartition(p, prodEnv.Addr())})
	errs := make(chan error, 1)
	go func() {
		for _, r := range records {
			if err := p.EmitTo(ctx, 0, r); err != nil {
				errs <- err
				return
			}
		}
		errs <- p.Finish(ctx)
	}()
	for i := 0; i < len(records); {
		e, err := g.Next(ctx)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if e.Event != nil {
			continue
		}
		if !bytes.Equal(e.Record, records[i]) {
			t.Fatalf("record %d differs after the round trip", i)
		}
		i++
	}
	must(t, <-errs)
	stats := p.CompressionStats()
	g.Close()
	p.Release()
	return stats
}

// testCompressedRoundTrip: text-like records of a pipelined partition
// with LZ4 go out compressed (at least 2x) and arrive intact.
func (s *suite) testCompressedRoundTrip(t *testing.T) {
	words := []string{"exchange", "partition", "buffer", "credit", "record", "the", "of", "network", "consumer", "producer"}
	rng := rand.New(rand.NewPCG(1, 2))
	records := make([][]byte, 20000)
	for i := range records {
		var b bytes.Buffer
		fmt.Fprintf(&b, "%08d", i)
		for range 8 + rng.IntN(12) {
			b.WriteByte(' ')
			b.WriteString(words[rng.IntN(len(words))])
		}
		records[i] = b.Bytes()
	}
	st := s.sendAndCheck(t, records)
	if st.Compressed == 0 || st.Ratio() < 2 {
		t.Fatalf("text-like records: %+v, ratio %.2f; want compressed at least 2x", st, st.Ratio())
	}
}

// testRandomNotCompressed: 64 KiB random records never shrink, so no
// buffer of them is sent compressed.
func (s *suite) testRandomNotCompressed(t *testing.T) {
	rng := rand.NewChaCha8([32]byte{7})
	records := make([][]byte, 48)
	for i := range records {
		records[i] = make([]byte, 64<<10)
		rng.Read(records[i])
	}
	st := s.sendAndCheck(t, records)
	if st.Buffers == 0 || st.Compressed != 0 {
		t.Fatalf("random records: %+v; want buffers offered and none compressed", st)
	}
}
