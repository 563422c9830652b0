package linkemu

import (
	"math/rand/v2"
	"time"
)

// DelayLine is an order-preserving FIFO that releases each item a fixed
// delay (plus optional jitter) after it entered. Due times never decrease,
// so jitter never reorders. It works on explicit times and does no I/O.
type DelayLine[T any] struct {
	delay, jitter time.Duration
	rng           *rand.Rand
	last          time.Time

	ring       []delayEntry[T]
	head, size int
}

type delayEntry[T any] struct {
	due time.Time
	v   T
}

// NewDelayLine returns a delay line; the jitter generator is seeded from
// seed and stream.
func NewDelayLine[T any](delay, jitter time.Duration, seed int64, stream uint64) *DelayLine[T] {
	d := &DelayLine[T]{delay: delay, jitter: jitter, ring: make([]delayEntry[T], 64)}
	if jitter > 0 {
		d.rng = newRand(seed, stream)
	}
	return d
}

// Len returns the number of items in the line.
func (d *DelayLine[T]) Len() int { return d.size }

// Push adds v, which entered the line at t, and returns its due time:
// max(t+delay+U[0,jitter], due time of the previous item).
func (d *DelayLine[T]) Push(t time.Time, v T) time.Time {
	due := t.Add(d.delay)
	if d.jitter > 0 {
		due = due.Add(time.Duration(d.rng.Int64N(int64(d.jitter) + 1)))
	}
	if due.Before(d.last) {
		due = d.last
	}
	d.last = due
	if d.size == len(d.ring) {
		d.grow()
	}
	i := d.head + d.size
	if i >= len(d.ring) {
		i -= len(d.ring)
	}
	d.ring[i] = delayEntry[T]{due, v}
	d.size++
	return due
}

func (d *DelayLine[T]) grow() {
	n := make([]delayEntry[T], 2*len(d.ring))
	for i := 0; i < d.size; i++ {
		n[i] = d.ring[(d.head+i)%len(d.ring)]
	}
	d.ring, d.head = n, 0
}

// Next returns the due time of the head item.
func (d *DelayLine[T]) Next() (due time.Time, ok bool) {
	if d.size == 0 {
		return time.Time{}, false
	}
	return d.ring[d.head].due, true
}

// Pop removes and returns the head item if it is due at now.
func (d *DelayLine[T]) Pop(now time.Time) (v T, due time.Time, ok bool) {
	if d.size == 0 || d.ring[d.head].due.After(now) {
		return v, time.Time{}, false
	}
	e := &d.ring[d.head]
	v, due = e.v, e.due
	*e = delayEntry[T]{}
	d.head++
	if d.head == len(d.ring) {
		d.head = 0
	}
	d.size--
	return v, due, true
}
