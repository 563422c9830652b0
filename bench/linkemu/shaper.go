package linkemu

import "time"

// Shaper is a drop-tail queue in front of a serializer (a token bucket
// whose depth is one packet): a packet of n bytes occupies the bottleneck for
// n*8/rate seconds, after the packets ahead of it. It works on explicit
// times and does no I/O.
type Shaper struct {
	rate  int64 // bits per second; 0 = unlimited
	limit int   // max packets waiting or in service

	busyUntil time.Time
	rem       int64 // sub-nanosecond remainder, in units of 1/rate ns

	// departures of admitted packets still in the queue, FIFO ring.
	ring       []time.Time
	head, size int
}

// NewShaper returns a shaper with the given rate (bits/s, 0 = unlimited)
// and queue limit in packets (< 1 means 1).
func NewShaper(rate int64, limit int) *Shaper {
	if limit < 1 {
		limit = 1
	}
	s := &Shaper{rate: rate, limit: limit}
	if rate > 0 {
		s.ring = make([]time.Time, limit)
	}
	return s
}

// SerializationTime returns bytes*8/rate.
func SerializationTime(bytes int, rate int64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(int64(bytes) * 8 * int64(time.Second) / rate)
}

// Len returns how many packets are queued or in service at now.
func (s *Shaper) Len(now time.Time) int {
	s.expire(now)
	return s.size
}

func (s *Shaper) expire(now time.Time) {
	for s.size > 0 && !s.ring[s.head].After(now) {
		s.head++
		if s.head == len(s.ring) {
			s.head = 0
		}
		s.size--
	}
}

// Admit offers a packet of the given size at time now. It returns the time
// the packet's last bit leaves the bottleneck, or ok == false when the
// queue is full (drop-tail).
func (s *Shaper) Admit(now time.Time, bytes int) (depart time.Time, ok bool) {
	if s.rate <= 0 {
		return now, true
	}
	s.expire(now)
	if s.size >= s.limit {
		return time.Time{}, false
	}
	start := s.busyUntil
	if start.Before(now) {
		start = now
		s.rem = 0
	}
	// exact serialization: bits*1e9/rate ns, carrying the remainder.
	num := int64(bytes)*8*int64(time.Second) + s.rem
	ns := num / s.rate
	s.rem = num % s.rate
	depart = start.Add(time.Duration(ns))
	s.busyUntil = depart
	i := s.head + s.size
	if i >= len(s.ring) {
		i -= len(s.ring)
	}
	s.ring[i] = depart
	s.size++
	return depart, true
}
