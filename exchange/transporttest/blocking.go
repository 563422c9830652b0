package transporttest

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange"
)

// spillFiles lists the partition files under dir.
func spillFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".data") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// readBlocking reads subpartition sub of p from addr ("" = locally) with
// a fresh gate and verifies every record against want. limit > 0 stops
// after that many records and closes the gate mid-read.
func readBlocking(ctx context.Context, t *testing.T, env *exchange.Environment, p *exchange.ResultPartition, sub int, addr string, want uint64, limit int) error {
	spec := []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: sub, Addr: addr}}
	g := newGate(t, env, exchange.GateConfig{Channels: spec, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	defer g.Close()
	v := newVerifier(spec, []int{0})
	if limit > 0 {
		for v.records < limit {
			e, err := g.Next(ctx)
			if err != nil {
				return err
			}
			if e.Event == nil {
				if err := v.check(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	eops, err := v.drain(ctx, g)
	if err != nil {
		return err
	}
	if eops != 1 || v.next[0] != want {
		return fmt.Errorf("blocking read of subpartition %d: %d records of %d, %d EndOfPartition", sub, v.next[0], want, eops)
	}
	return nil
}

// testBlockingReadAgain: a BLOCKING partition is requested before it is
// finished (PartitionNotFound, retried), then read completely by a
// remote and a local consumer, again by two more consumers one after the
// other, once more after a consumer closed mid-read, and leaves no file
// after Release.
func (s *suite) testBlockingReadAgain(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	dir := t.TempDir()
	prodEnv, consEnv := s.envWith(t, exchange.Config{NetworkMemory: 8 << 20, SpillDir: dir}), s.env(t, 0)
	p := newPartition(t, prodEnv, exchange.PartitionConfig{Subpartitions: 2, Type: exchange.Blocking})
	if got := p.Type(); got != exchange.Blocking {
		t.Fatalf("Type() = %v", got)
	}

	// Requested before Finish: the channel retries until it is consumable.
	g := newGate(t, consEnv, exchange.GateConfig{
		Channels:       []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: 1, Addr: prodEnv.Addr()}},
		InitialBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, PartitionRequestTimeout: 60 * time.Second,
	})
	sent, err := produce(ctx, p, 0, s.o.Records, 7)
	must(t, err)
	v := newVerifier(g2Spec(p, 1, prodEnv.Addr()), []int{0})
	if eops, err := v.drain(ctx, g); err != nil || eops != 1 || v.next[0] != sent[1] {
		t.Fatalf("early consumer of subpartition 1: %d of %d records, %d EndOfPartition, %v", v.next[0], sent[1], eops, err)
	}
	g.Close()
	must(t, readBlocking(ctx, t, consEnv, p, 0, prodEnv.Addr(), sent[0], 0))

	// Read again, each from the start: remotely, locally, and after a
	// consumer that went away mid-read.
	must(t, readBlocking(ctx, t, consEnv, p, 0, prodEnv.Addr(), sent[0], 0))
	must(t, readBlocking(ctx, t, prodEnv, p, 1, "", sent[1], 0))
	must(t, readBlocking(ctx, t, consEnv, p, 1, prodEnv.Addr(), 0, 100))
	must(t, readBlocking(ctx, t, consEnv, p, 1, prodEnv.Addr(), sent[1], 0))

	// Stored compressed by default: records of this suite shrink.
	if st := p.CompressionStats(); p.Compression() != exchange.CompressionLZ4 || st.Compressed == 0 || p.SpilledBytes() >= st.BytesIn {
		t.Fatalf("compression %v, %+v, %d bytes on disk: want LZ4 and a smaller file", p.Compression(), st, p.SpilledBytes())
	}
	if len(spillFiles(t, dir)) != 1 {
		t.Fatalf("spill files before Release: %v, want one", spillFiles(t, dir))
	}
	p.Release()
	if files := spillFiles(t, dir); len(files) != 0 {
		t.Fatalf("spill files after Release: %v", files)
	}
	prodEnv.Close()
	consEnv.Close()
}

func g2Spec(p *exchange.ResultPartition, sub int, addr string) []exchange.ChannelSpec {
	return []exchange.ChannelSpec{{Partition: p.ID(), Subpartition: sub, Addr: addr}}
}
