package workload

// ChannelMeter measures one channel at the consumer for the lossy-link
// benchmark: bytes delivered and stall time. All times are nanoseconds in
// the producer's clock (send timestamps) and the consumer's view of it
// (arrivals), which are the same clock when both run in one process.
//
// Stall time answers "how long was this channel held up although an ideal
// transport would already have delivered something?". For each record with
// send time s arriving at t, after the channel's previous arrival t_prev:
//
//	due    = s + Grace          (Grace = one-way delay + buffer timeout + 1 ms)
//	stall += max(0, t - max(t_prev, due))
//
// i.e. the time during which a record that an ideal transport would have
// delivered by due had not arrived, and nothing else arrived on the channel
// either. A lost packet on a multiplexed TCP connection stalls every channel
// behind it; with one QUIC stream per channel only the channels whose data
// the packet carried. Arrivals in one burst (one buffer) add stall only for
// the first record of the burst. Records sent before From are not measured
// (warm-up: connection setup and slow start) but still set t_prev.
type ChannelMeter struct {
	// From and Grace are set before the first record.
	From, Grace int64

	prev    int64
	started bool
	st      ChannelStats
}

// ChannelStats is one channel's measurement.
type ChannelStats struct {
	// Records and Bytes (record payload) sent at or after From.
	Records, Bytes int64
	// LastArrival is the arrival of the last measured record (0: none).
	LastArrival int64
	// From is the start of the measurement window.
	From int64
	// StallNs is the stall time (see ChannelMeter).
	StallNs int64
}

// Arrive accounts a record sent at send that arrived at arrive.
func (m *ChannelMeter) Arrive(send, arrive int64, bytes int) {
	if send >= m.From {
		if m.started {
			m.st.StallNs += stallOf(send, arrive, m.prev, m.Grace)
		}
		m.st.Records++
		m.st.Bytes += int64(bytes)
		m.st.LastArrival = arrive
	}
	m.prev, m.started = arrive, true
}

// Stats returns the measurement so far.
func (m *ChannelMeter) Stats() ChannelStats {
	s := m.st
	s.From = m.From
	return s
}

// stallOf is one record's contribution: max(0, t - max(t_prev, s + grace)).
func stallOf(send, arrive, prev, grace int64) int64 {
	return max(0, arrive-max(prev, send+grace))
}

// Seconds is the channel's measurement window: From to its last arrival.
func (c ChannelStats) Seconds() float64 {
	if c.LastArrival <= c.From {
		return 0
	}
	return float64(c.LastArrival-c.From) / 1e9
}

// Mbps is the channel's record-payload throughput over its window, in
// 10^6 bits per second.
func (c ChannelStats) Mbps() float64 {
	s := c.Seconds()
	if s == 0 {
		return 0
	}
	return float64(c.Bytes) * 8 / s / 1e6
}
