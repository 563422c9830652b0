package results

// Link-mode results: the emulated lossy link (bench/linkemu) the run went
// over, as configured and as measured by its fidelity probe, and the extra
// per-transport metrics measured on it. All fields are absent on loopback
// runs.

// Link describes the emulated link of a run (or of one sweep point).
type Link struct {
	// Configured, per direction (both directions are the same).
	Loss       float64 `json:"loss"`
	BurstLen   float64 `json:"burst_len"`
	RTT        string  `json:"rtt"`
	RateBits   int64   `json:"rate_bits_per_sec"`
	Queue      int     `json:"queue_packets"`
	Seed       int64   `json:"seed"`
	TCPCC      string  `json:"tcp_cc"`
	Load       float64 `json:"load"`
	OneWayUS   float64 `json:"one_way_delay_us"`
	GraceUS    float64 `json:"stall_grace_us"`
	WarmupS    float64 `json:"warmup_s"`
	RecordRate float64 `json:"records_per_sec_per_writer"`
	Probe      Probe   `json:"probe"`
}

// Probe is the fidelity probe's measurement (linkemu.ProbeResult) and
// whether it passed linkemu's tolerances (RTT and rate within 10%, loss
// within 20% relative).
type Probe struct {
	ConfiguredRTTUS float64 `json:"configured_rtt_us"`
	RTTMedianUS     float64 `json:"rtt_median_us"`
	RTTMinUS        float64 `json:"rtt_min_us"`
	ConfiguredLoss  float64 `json:"configured_loss"`
	LossAtoB        float64 `json:"loss_a_to_b"`
	LossBtoA        float64 `json:"loss_b_to_a"`
	LossPackets     int     `json:"loss_packets"`
	ConfiguredRate  int64   `json:"configured_rate_bits_per_sec"`
	Rate            float64 `json:"rate_bits_per_sec"`
	QueueDrops      uint64  `json:"queue_drops_during_loss_train"`
	Seconds         float64 `json:"seconds"`
	OK              bool    `json:"ok"`
	Error           string  `json:"error,omitempty"`
}

// Direction counts the emulator's packets of one direction during one
// transport's run (a diff of linkemu.Stats around it).
type Direction struct {
	Packets      uint64 `json:"packets"`
	Forwarded    uint64 `json:"forwarded"`
	DroppedLoss  uint64 `json:"dropped_loss"`
	DroppedQueue uint64 `json:"dropped_queue"`
}

// Emulator holds both directions: producer -> consumer carries the data,
// consumer -> producer the acknowledgements and credit.
type Emulator struct {
	Data Direction `json:"producer_to_consumer"`
	Ack  Direction `json:"consumer_to_producer"`
}

// Channels summarises the per-channel measurements of a run.
//
// Throughput of a channel: the record payload bytes it delivered that were
// sent after the warm-up, times 8, divided by the time from the end of the
// warm-up to its last such arrival, in 10^6 bits/s.
//
// Stall time of a channel, computed at the consumer from each record's
// send timestamp s, its arrival t and the channel's previous arrival
// t_prev: stall += max(0, t - max(t_prev, s + grace)), grace = one-way
// delay + buffer timeout + 1 ms. That is the time during which a record
// an ideal transport would already have delivered had not arrived and
// nothing else arrived on the channel either: head-of-line blocking (and
// any other hold-up: congestion window, credit, CPU) shows up here. Records
// sent during the warm-up are not counted.
type Channels struct {
	Count      int     `json:"count"`
	MinMbps    float64 `json:"min_mbps"`
	MedianMbps float64 `json:"median_mbps"`
	// Stall time in milliseconds: summed over channels, and the
	// maximum, median and 99th percentile over channels.
	StallTotalMS  float64 `json:"stall_total_ms"`
	StallMaxMS    float64 `json:"stall_max_ms"`
	StallMedianMS float64 `json:"stall_median_ms"`
	StallP99MS    float64 `json:"stall_p99_ms"`
	// StallFraction is StallTotal / (channels x measured seconds): the
	// average fraction of time a channel was stalled.
	StallFraction float64 `json:"stall_fraction"`
}

// CDFPoint is one point of a latency CDF: the fraction of records whose
// latency was at most LatencyUS.
type CDFPoint struct {
	LatencyUS float64 `json:"latency_us"`
	Fraction  float64 `json:"fraction"`
}

// SweepPoint is one setting of a sweep: the swept parameter's value, the
// link as measured at that point, and every transport's result (including
// the "ideal" entry).
//
// With several seeds, Link is the first seed's, Results the Aggregate over
// the seeds, Seeds every seed's run and Summary their medians and ranges.
type SweepPoint struct {
	Param   string    `json:"param"`
	Value   string    `json:"value"`
	X       float64   `json:"x"`
	Link    *Link     `json:"link"`
	Results []Result  `json:"results"`
	Seeds   []SeedRun `json:"seeds,omitempty"`
	Summary *Summary  `json:"summary,omitempty"`
}

// Sweep is the JSON document of a sweep run:
// {"config": ..., "sweep": [{"param": "loss", "value": "1%", "x": 0.01,
// "link": {...}, "results": [...]}, ...]}.
type Sweep struct {
	SchemaVersion int          `json:"schema_version"`
	Config        Config       `json:"config"`
	Sweep         []SweepPoint `json:"sweep"`
}
