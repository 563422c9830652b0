// Package raw measures the physical limits of the transports on the same
// machine: one plain loopback TCP stream and one plain quic-go stream
// moving segment-size writes as fast as the stack allows, with the same
// socket options, TLS and windows as the exchange transports.
//
// Every segment starts with its sequence number and send time, so the
// reader counts lost, duplicated and reordered segments and measures a
// per-segment latency (mostly socket-buffer queueing under full load).
package raw

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qexchange/qexchange/bench/hist"
)

// Options describe one baseline run.
type Options struct {
	// SegmentSize is the size of each write (>= 16).
	SegmentSize int
	// Duration is how long the writer writes.
	Duration time.Duration
	// Progress, if set, is updated with the bytes received so far.
	Progress *atomic.Int64
}

// Result is what the reader saw.
type Result struct {
	Segments   int64
	Bytes      int64
	Seconds    float64
	Lost       int64
	Duplicated int64
	Reordered  int64
	Hist       *hist.Histogram
}

// pipe is a connected stream pair.
type pipe struct {
	w io.WriteCloser
	r io.Reader
	// closeAll releases everything (after the run or on error).
	closeAll func()
}

// run drives writer and reader over p.
func run(ctx context.Context, p pipe, o Options) (*Result, error) {
	defer p.closeAll()
	if o.SegmentSize < 16 {
		return nil, fmt.Errorf("raw: segment size %d < 16", o.SegmentSize)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, o.SegmentSize)
		for i := range buf {
			buf[i] = byte(i)
		}
		deadline := start.Add(o.Duration)
		for seq := uint64(0); ; seq++ {
			now := time.Since(start)
			if start.Add(now).After(deadline) || ctx.Err() != nil {
				break
			}
			binary.LittleEndian.PutUint64(buf[0:], seq)
			binary.LittleEndian.PutUint64(buf[8:], uint64(now))
			if _, err := p.w.Write(buf); err != nil {
				werr = err
				break
			}
		}
		if err := p.w.Close(); err != nil && werr == nil {
			werr = err
		}
	}()

	res := &Result{Hist: hist.New()}
	buf := make([]byte, o.SegmentSize)
	var next uint64
	var rerr error
	stop := context.AfterFunc(ctx, p.closeAll)
	defer stop()
	for {
		if _, err := io.ReadFull(p.r, buf); err != nil {
			if !errors.Is(err, io.EOF) {
				rerr = err
			}
			break
		}
		now := time.Since(start)
		seq := binary.LittleEndian.Uint64(buf[0:])
		res.Hist.Record(int64(now) - int64(binary.LittleEndian.Uint64(buf[8:])))
		switch {
		case seq == next:
			next++
		case seq > next:
			res.Lost += int64(seq - next)
			next = seq + 1
		default:
			// Lower: a stream cannot reorder; count it as a duplicate
			// (and the hole it fills, reported lost above, stays lost).
			res.Duplicated++
		}
		res.Segments++
		res.Bytes += int64(o.SegmentSize)
		if o.Progress != nil && res.Segments&63 == 0 {
			o.Progress.Store(res.Bytes)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	p.closeAll()
	wg.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if rerr != nil {
		return res, fmt.Errorf("raw: read: %w", rerr)
	}
	if werr != nil {
		return res, fmt.Errorf("raw: write: %w", werr)
	}
	return res, nil
}
