package exchange

import (
	"errors"
	"sync"
	"time"
)

// localChannel reads a subpartition of a partition in the same
// Environment (Flink's LocalInputChannel): buffers are handed over as they
// are, with no network, no copy and no credit; the producer's bounded pool
// is the backpressure.
type localChannel struct {
	g    *InputGate
	idx  int
	spec ChannelSpec
	cid  ChannelID
	d    deserializer

	mu       sync.Mutex
	part     *ResultPartition
	sub      *subpartition
	err      error
	released bool
	retry    backoff
	timer    *time.Timer
}

func newLocalChannel(g *InputGate, i int, spec ChannelSpec) *localChannel {
	return &localChannel{
		g: g, idx: i, spec: spec, cid: NewChannelID(),
		d:     newDeserializer(g.env, ""),
		retry: backoff{next: g.cfg.InitialBackoff, max: g.cfg.MaxBackoff},
	}
}

func (c *localChannel) id() ChannelID               { return c.cid }
func (c *localChannel) deserializer() *deserializer { return &c.d }

// start attaches to the subpartition, retrying while the partition is
// not registered yet.
func (c *localChannel) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released {
		return
	}
	p, err := c.g.env.partitions.lookup(c.spec.Partition)
	if err == nil {
		var sub *subpartition
		if sub, err = p.subpartition(c.spec.Subpartition); err == nil {
			if err = sub.attach(c.onAvailable); err == nil {
				c.part, c.sub = p, sub
				go c.onAvailable() // data may already be queued
				return
			}
		}
	}
	if errors.Is(err, ErrPartitionNotFound) {
		if d, ok := c.retry.delay(); ok {
			c.timer = time.AfterFunc(d, c.start)
			return
		}
		err = &PartitionNotFoundError{Partition: c.spec.Partition, Peer: "local", Waited: time.Since(c.retry.started)}
	}
	c.err = err
	go c.g.notifyChannel(c.idx, false)
}

func (c *localChannel) onAvailable() { c.g.notifyChannel(c.idx, false) }

func (c *localChannel) poll() (Buffer, bool, bool, error) {
	c.mu.Lock()
	sub, part, err := c.sub, c.part, c.err
	c.mu.Unlock()
	if err != nil {
		return Buffer{}, false, false, err
	}
	if sub == nil {
		return Buffer{}, false, false, nil
	}
	res := sub.poll(true)
	if !res.ok {
		if ferr := part.failure(); ferr != nil {
			return Buffer{}, false, false, &RemoteError{Peer: "local", Channel: c.cid, Message: ferr.Error()}
		}
		if sub.isReleased() {
			return Buffer{}, false, false, ErrClosed
		}
		return Buffer{}, false, false, nil
	}
	return res.buf, true, sub.available(true), nil
}

func (c *localChannel) resume() error {
	c.mu.Lock()
	sub := c.sub
	c.mu.Unlock()
	if sub != nil {
		sub.resume()
	}
	return nil
}

func (c *localChannel) ackAllRecordsProcessed() error {
	c.mu.Lock()
	sub, part := c.sub, c.part
	c.mu.Unlock()
	if sub == nil {
		return ErrClosed
	}
	part.ackAllRecordsProcessed(sub.index)
	return nil
}

func (c *localChannel) sendTaskEvent(ev []byte) error {
	c.mu.Lock()
	sub, part := c.sub, c.part
	c.mu.Unlock()
	if sub == nil {
		return ErrClosed
	}
	if part.onEvent != nil {
		part.onEvent(sub.index, append([]byte(nil), ev...))
	}
	return nil
}

func (c *localChannel) release() {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	c.released = true
	sub := c.sub
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	if sub != nil {
		sub.detach()
		sub.release()
	}
}
