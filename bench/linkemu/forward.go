package linkemu

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// packet is a pooled buffer holding one IP packet.
type packet struct {
	b []byte
	n int
}

// deliverEarly lets the writer release packets due within this margin, to
// absorb wake-up latency.
const deliverEarly = 50 * time.Microsecond

// wakeEarly arms the writer's timer this much before the head is due, to
// absorb the typical wake-up latency.
const wakeEarly = 40 * time.Microsecond

// pipe forwards one direction: read -> loss -> queue+rate -> delay -> write.
type pipe struct {
	name string
	in   io.Reader
	out  io.Writer
	log  zerolog.Logger
	c    *dirCounters
	pool *sync.Pool
	// lossDir, seed and lossStream recreate loss (ResetLoss).
	lossDir    Direction
	seed       int64
	lossStream uint64

	mu     sync.Mutex
	loss   LossModel // guarded by mu: ResetLoss replaces it
	shaper *Shaper
	line   *DelayLine[*packet]

	wake  chan struct{}
	done  chan struct{}
	sleep *sleeper
}

func newPipe(name string, d Direction, mtu int, seed int64, lossStream, jitStream uint64,
	in io.Reader, out io.Writer, c *dirCounters, pool *sync.Pool, log zerolog.Logger) (*pipe, error) {
	sl, err := newSleeper()
	if err != nil {
		return nil, err
	}
	return &pipe{
		name:    name,
		in:      in,
		out:     out,
		log:     log,
		c:       c,
		pool:    pool,
		loss:    NewLossModel(d, seed, lossStream),
		lossDir: d, seed: seed, lossStream: lossStream,
		shaper: NewShaper(d.RateBitsPerSec, d.queueLimit(mtu)),
		line:   NewDelayLine[*packet](d.Delay, d.Jitter, seed, jitStream),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		sleep:  sl,
	}, nil
}

// resetLoss restarts the loss model at packet index 0 of its seeded
// sequence: the next packet read gets the first decision again.
func (p *pipe) resetLoss() {
	p.mu.Lock()
	p.loss = NewLossModel(p.lossDir, p.seed, p.lossStream)
	p.mu.Unlock()
}

// stop makes both loops return once the TUN files are closed too.
func (p *pipe) stop() {
	close(p.done)
	p.sleep.close()
}

func isClosedErr(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, io.EOF)
}

// readLoop runs until in is closed.
func (p *pipe) readLoop() {
	for {
		pk := p.pool.Get().(*packet)
		n, err := p.in.Read(pk.b[:cap(pk.b)])
		if err != nil {
			p.pool.Put(pk)
			if isClosedErr(err) {
				return
			}
			select {
			case <-p.done:
				return
			default:
			}
			p.log.Warn().Err(err).Str("dir", p.name).Msg("linkemu: tun read failed; forwarder stops")
			return
		}
		if n == 0 {
			p.pool.Put(pk)
			continue
		}
		pk.n = n
		now := time.Now()
		p.c.in.Add(1)
		p.c.bytesIn.Add(uint64(n))
		p.mu.Lock()
		if p.loss.Drop() {
			p.mu.Unlock()
			p.c.lossDrop.Add(1)
			p.pool.Put(pk)
			continue
		}
		idle := p.shaper.Len(now) == 0
		depart, ok := p.shaper.Admit(now, n)
		if idle && ok {
			p.c.idleArrivals.Add(1)
		}
		if !ok {
			p.mu.Unlock()
			p.c.queueDrop.Add(1)
			p.pool.Put(pk)
			continue
		}
		wasEmpty := p.line.Len() == 0
		p.line.Push(depart, pk)
		p.mu.Unlock()
		if wasEmpty {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

// writeLoop runs until done is closed. It sleeps until the head of the
// delay line is due and writes every due packet.
func (p *pipe) writeLoop() {
	batch := make([]*packet, 0, 64)
	for {
		p.mu.Lock()
		now := time.Now()
		horizon := now.Add(deliverEarly)
		for {
			pk, _, ok := p.line.Pop(horizon)
			if !ok {
				break
			}
			batch = append(batch, pk)
		}
		next, has := p.line.Next()
		p.mu.Unlock()

		if len(batch) > 0 {
			for i, pk := range batch {
				if _, err := p.out.Write(pk.b[:pk.n]); err != nil {
					p.c.writeErr.Add(1)
					if isClosedErr(err) {
						p.pool.Put(pk)
						for _, rest := range batch[i+1:] {
							p.c.writeErr.Add(1)
							p.pool.Put(rest)
						}
						return
					}
				} else {
					p.c.fwd.Add(1)
					p.c.bytesFwd.Add(uint64(pk.n))
				}
				p.pool.Put(pk)
				batch[i] = nil
			}
			batch = batch[:0]
			continue
		}
		if !has {
			select {
			case <-p.wake:
				continue
			case <-p.done:
				return
			}
		}
		if err := p.sleep.sleep(next.Sub(now) - wakeEarly); err != nil {
			return // closed
		}
	}
}

// drain returns the packets left in the delay line to the pool.
func (p *pipe) drain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	far := time.Now().Add(24 * time.Hour * 365)
	for {
		pk, _, ok := p.line.Pop(far)
		if !ok {
			return
		}
		p.pool.Put(pk)
	}
}
