package workload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/qexchange/qexchange/bench/hist"
)

// Clock is a process's time base: send times are nanoseconds since Base.
// Abs is CLOCK_MONOTONIC at Base, so a consumer in another process on the
// same host (same BootID) can convert a producer's times into its own.
type Clock struct {
	Base   time.Time
	Abs    int64
	BootID string
}

// NewClock starts a time base now.
func NewClock() *Clock {
	var ts unix.Timespec
	c := &Clock{}
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err == nil {
		c.Abs = ts.Nano()
	}
	c.Base = time.Now()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		c.BootID = strings.TrimSpace(string(b))
	}
	return c
}

// Now is the time since Base in ns (monotonic).
func (c *Clock) Now() int64 { return int64(time.Since(c.Base)) }

// Encoder builds one writer's records: it picks each record's subpartition
// (predicting the RecordWriter's selector) and numbers it in that channel.
// It is for one goroutine and allocates nothing per record.
type Encoder struct {
	writer      uint32
	r           int
	sel         uint8
	size        int
	sampleEvery uint64
	clock       *Clock

	buf  []byte
	next []uint64 // per subpartition: records sent so far
	// check is checkBase per subpartition, and for broadcast records.
	check     []uint32
	checkBcst uint32
	n         uint64 // records emitted by this writer
	rr        int
	// untilSample counts down to the next sampled record.
	untilSample uint64
	// lastTS is the last clock reading, the send time of unsampled full
	// records (an upper bound on their age, not measured).
	lastTS int64
	// checkMask: records whose sequence number in the channel has no bit
	// of it set carry the full check (xxhash64 / filler); 0 = every record
	// (VerifyFull).
	checkMask uint64
	// nowAt is the clock reading of the current Next or Fill (haveNow).
	nowAt   int64
	haveNow bool
}

// SetVerify sets the verification mode (VerifyFull, the default, or
// VerifySampled); call it before the first record and put the same mode
// in the Hello (Hello.ChecksumEvery = ChecksumEvery(mode)).
func (e *Encoder) SetVerify(mode string) { e.checkMask = uint64(ChecksumEvery(mode) - 1) }

// NewEncoder returns the encoder of writer (of R subpartitions).
func NewEncoder(writer, r int, selector string, size, sampleEvery int, clock *Clock) *Encoder {
	if sampleEvery < 1 {
		sampleEvery = 1
	}
	if size < MinRecordSize {
		size = MinRecordSize
	}
	e := &Encoder{
		writer: uint32(writer), r: r, sel: selCode(selector), size: size,
		sampleEvery: uint64(sampleEvery), clock: clock,
		buf:       fillerPattern(size),
		next:      make([]uint64, r),
		check:     make([]uint32, r),
		checkBcst: checkBase(uint32(writer), broadcastKey),
	}
	for sub := range e.check {
		e.check[sub] = checkBase(uint32(writer), uint32(sub))
	}
	return e
}

// Next returns the next record (valid until the next call) and its
// subpartition, -1 for broadcast records.
func (e *Encoder) Next() ([]byte, int) {
	e.haveNow = false
	return e.buf, e.encode(e.buf)
}

// Batch is a reusable arena of records for Encoder.Fill: records built
// in it stay valid until its next Fill.
type Batch struct {
	recs [][]byte
}

// NewBatch returns an arena of n records of the encoder's size, their
// filler written once: Fill rewrites only the header fields.
func (e *Encoder) NewBatch(n int) *Batch {
	n = max(n, 1)
	arena := make([]byte, n*e.size)
	b := &Batch{recs: make([][]byte, n)}
	for i := range b.recs {
		r := arena[i*e.size : (i+1)*e.size : (i+1)*e.size]
		copy(r, e.buf)
		b.recs[i] = r
	}
	return b
}

// Len is the batch's capacity in records.
func (b *Batch) Len() int { return len(b.recs) }

// Fill builds the next k (at most b.Len()) records in b and returns them,
// in the order they must be emitted (the encoder predicts the selector's
// choice of subpartition for each). The clock is read at most once for
// the whole batch: its sampled records share a send time, the time it was
// built, which is at or before each one's emission.
func (e *Encoder) Fill(b *Batch, k int) [][]byte {
	e.haveNow = false
	recs := b.recs[:min(k, len(b.recs))]
	for _, r := range recs {
		e.encode(r)
	}
	return recs
}

// now is the send time of a sampled record: the clock, read at most once
// per Next or Fill.
func (e *Encoder) now() int64 {
	if !e.haveNow {
		e.nowAt = e.clock.Now()
		e.haveNow = true
	}
	return e.nowAt
}

// encode writes the header of the next record into b, whose filler is
// already in place, and returns its subpartition (-1: broadcast).
func (e *Encoder) encode(b []byte) int {
	n := e.n
	e.n++
	if e.size >= FullSize {
		var key uint32
		var sub int
		switch e.sel {
		case 1: // hash
			key = mix32(uint32(n) ^ e.writer<<24)
			sub = hashSubU32(key, e.r)
		case 2:
			key, sub = broadcastKey, -1
		default:
			sub = e.rr
			if e.rr++; e.rr == e.r {
				e.rr = 0
			}
			key = uint32(sub)
		}
		var seq uint64
		if sub >= 0 {
			seq = e.next[sub]
			e.next[sub]++
		} else {
			seq = n
		}
		checked := seq&e.checkMask == 0
		if e.sample() {
			e.lastTS = e.now()
			seq |= sampledBit64
		}
		binary.LittleEndian.PutUint64(b[0:8], seq)
		binary.LittleEndian.PutUint32(b[8:12], key)
		binary.LittleEndian.PutUint32(b[12:16], e.writer)
		binary.LittleEndian.PutUint64(b[16:24], uint64(e.lastTS))
		end := len(b) - 8
		if checked {
			binary.LittleEndian.PutUint64(b[end:], xxhash.Sum64(b[:end]))
		} else {
			binary.LittleEndian.PutUint64(b[end:], headerCheck(seq, key, e.writer, uint64(e.lastTS)))
		}
		return sub
	}
	sampled := e.sample()
	var ts uint32
	if sampled {
		ts = uint32(e.now() >> tsUnitShift)
	}
	var sub int
	var word uint32
	switch e.sel {
	case 1:
		if sampled {
			word = ts
		} else {
			word = mix32(uint32(n) ^ e.writer<<24)
		}
		sub = hashSubU32(word, e.r)
	case 2:
		sub = -1
	default:
		sub = e.rr
		if e.rr++; e.rr == e.r {
			e.rr = 0
		}
	}
	var seq uint64
	base := e.checkBcst
	if sub >= 0 {
		seq = e.next[sub]
		e.next[sub]++
		base = e.check[sub]
	} else {
		seq = n
	}
	seq31 := uint32(seq) & seqMask31
	if sampled {
		word = ts
	} else if e.sel != 1 {
		word = checkWordFrom(base, seq31)
	}
	w0 := seq31
	if sampled {
		w0 |= sampledBit
	}
	binary.LittleEndian.PutUint32(b[0:4], w0)
	binary.LittleEndian.PutUint32(b[4:8], word)
	return sub
}

// sample reports whether this record is timestamped and measured: the
// first of every sampleEvery.
func (e *Encoder) sample() bool {
	if e.untilSample == 0 {
		e.untilSample = e.sampleEvery - 1
		return true
	}
	e.untilSample--
	return false
}

// Emitted is the number of records produced so far.
func (e *Encoder) Emitted() uint64 { return e.n }

// SentCounts returns the records sent per subpartition (for broadcast,
// every subpartition got every record).
func (e *Encoder) SentCounts() []uint64 {
	c := make([]uint64, e.r)
	if e.sel == 2 {
		for i := range c {
			c[i] = e.n
		}
		return c
	}
	copy(c, e.next)
	return c
}

// Control events travel as exchange.UserEvent payloads in each channel:
// a hello before the first record and end counts after the last one.
var (
	helloMagic = [4]byte{'Q', 'X', 'H', '2'}
	endMagic   = [4]byte{'Q', 'X', 'E', '1'}
)

// Hello describes a producer to its consumers.
type Hello struct {
	Writer, Writers, Readers int
	Selector                 string
	RecordSize, SampleEvery  int
	// BufferTimeout and Rate: the producer's settings (for reports).
	BufferTimeout time.Duration
	Rate          float64
	// ClockAbs and BootID: the producer's Clock.
	ClockAbs int64
	BootID   string
	// ChecksumEvery: the records of a channel whose sequence number is a
	// multiple of it carry the full check (a power of two; 0 or 1: every
	// record). See ChecksumEvery.
	ChecksumEvery int
}

// Encode returns the hello event payload.
func (h Hello) Encode() []byte {
	b := make([]byte, 0, 64)
	b = append(b, helloMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Writer))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Writers))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.Readers))
	b = append(b, selCode(h.Selector))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.RecordSize))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.SampleEvery))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.ClockAbs))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.BufferTimeout))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(h.Rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.ChecksumEvery))
	return append(b, h.BootID...)
}

var errNotControl = errors.New("workload: not a control event")

func decodeHello(b []byte) (Hello, error) {
	if len(b) < 53 || [4]byte(b[:4]) != helloMagic {
		return Hello{}, errNotControl
	}
	u := func(i int) int { return int(binary.LittleEndian.Uint32(b[i:])) }
	return Hello{
		Writer: u(4), Writers: u(8), Readers: u(12),
		Selector:   selName(b[16]),
		RecordSize: u(17), SampleEvery: u(21),
		ClockAbs:      int64(binary.LittleEndian.Uint64(b[25:])),
		BufferTimeout: time.Duration(binary.LittleEndian.Uint64(b[33:])),
		Rate:          math.Float64frombits(binary.LittleEndian.Uint64(b[41:])),
		ChecksumEvery: u(49),
		BootID:        string(b[53:]),
	}, nil
}

// EndEvents returns the end-count payloads of a writer: the records sent
// to each subpartition, in chunks of at most maxBytes.
func EndEvents(writer int, counts []uint64, maxBytes int) [][]byte {
	per := max((maxBytes-16)/8, 1)
	var out [][]byte
	for first := 0; first < len(counts); first += per {
		n := min(per, len(counts)-first)
		b := make([]byte, 0, 16+8*n)
		b = append(b, endMagic[:]...)
		b = binary.LittleEndian.AppendUint32(b, uint32(writer))
		b = binary.LittleEndian.AppendUint32(b, uint32(first))
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		for _, c := range counts[first : first+n] {
			b = binary.LittleEndian.AppendUint64(b, c)
		}
		out = append(out, b)
	}
	return out
}

// span is a range [lo, hi) of missing sequence numbers.
type span struct{ lo, hi uint64 }

// chanState is the consumer's view of one channel.
type chanState struct {
	writer uint32
	hello  bool
	sel    uint8
	// offset converts the consumer clock to the producer's: producer time
	// = consumer Clock.Now() + offset. latency: whether they share a clock.
	offset  int64
	latency bool

	mask    uint64 // ChecksumEvery-1: which records carry the full check
	check   uint32 // checkBase of the channel (compact records)
	next    uint64 // next expected sequence number
	holes   []span // missing numbers below next (only after anomalies)
	haveEnd bool
	sent    uint64
	eod     bool
}

// GateVerifier checks the records of one input gate (one consumer). It is
// for one goroutine; it allocates nothing per record (only on anomalies).
type GateVerifier struct {
	sub   int // the gate's subpartition index (reader index)
	w, r  int
	clock *Clock
	ch    []chanState
	hist  *hist.Histogram
	fill  []byte
	// from the first hello
	recordSize int
	selector   string
	hello      Hello

	// nowAt is the arrival time of the current buffer's records, read at
	// its first sampled record (haveNow) when buffered is set.
	nowAt    int64
	haveNow  bool
	buffered bool

	// meters is non-nil once Measure was called: per-channel throughput
	// and stall time, and latency only of records sent at or after from.
	meters []ChannelMeter
	from   int64

	st Stats
}

// Measure switches on per-channel measurement (ChannelMeter): records
// sent before from (producer clock, ns) are verified but not measured,
// neither in the latency histogram nor in the channel stats; grace is the
// ChannelMeter's due-time allowance. Call it before the first record.
func (g *GateVerifier) Measure(from, grace int64) {
	g.from = from
	g.meters = make([]ChannelMeter, len(g.ch))
	for i := range g.meters {
		g.meters[i] = ChannelMeter{From: from, Grace: grace}
	}
}

// NewBuffer says that the records that follow, until the next call,
// arrived together (one network buffer, as InputGate.NextBatch hands them
// out): the clock is read once for their latencies, at the first sampled
// one, instead of at each. That understates the latency of a buffer's
// later records by the time spent verifying the earlier ones (a few µs for
// a 32 KiB buffer). Without NewBuffer the clock is read for every sampled
// record.
func (g *GateVerifier) NewBuffer() {
	g.haveNow = false
	g.buffered = true
}

// now is the consumer's clock for a sampled record (see NewBuffer).
func (g *GateVerifier) now() int64 {
	if g.haveNow {
		return g.nowAt
	}
	t := g.clock.Now()
	g.nowAt, g.haveNow = t, g.buffered
	return t
}

// RecordSize is the producers' record size (from their hello; 0 before).
func (g *GateVerifier) RecordSize() int { return g.recordSize }

// ProducerHello is the first hello received (zero before).
func (g *GateVerifier) ProducerHello() Hello { return g.hello }

// Selector is the producers' selector (from their hello; "" before).
func (g *GateVerifier) Selector() string { return g.selector }

// Stats are the merged counts of one or more gates.
type Stats struct {
	Records, Bytes   int64
	Sent             int64
	Lost, Duplicated int64
	Reordered        int64
	ChecksumFailures int64
	Invalid          int64
	// Incomplete: channels that ended without the producer's final counts
	// (lost records in them cannot be computed).
	Incomplete int
	Hist       *hist.Histogram
	// Channels holds per-channel measurements when the verifiers measured
	// them (GateVerifier.Measure), gate by gate.
	Channels []ChannelStats
}

// Merge adds o into s.
func (s *Stats) Merge(o *Stats) {
	s.Records += o.Records
	s.Bytes += o.Bytes
	s.Sent += o.Sent
	s.Lost += o.Lost
	s.Duplicated += o.Duplicated
	s.Reordered += o.Reordered
	s.ChecksumFailures += o.ChecksumFailures
	s.Invalid += o.Invalid
	s.Incomplete += o.Incomplete
	s.Channels = append(s.Channels, o.Channels...)
	if o.Hist != nil {
		if s.Hist == nil {
			s.Hist = hist.New()
		}
		s.Hist.Merge(o.Hist)
	}
}

// NewGateVerifier checks gate sub (of R), whose channel i reads writer i.
func NewGateVerifier(sub, writers, readers int, clock *Clock) *GateVerifier {
	g := &GateVerifier{sub: sub, w: writers, r: readers, clock: clock, ch: make([]chanState, writers), hist: hist.New()}
	for i := range g.ch {
		g.ch[i].writer = uint32(i)
	}
	return g
}

// Event handles a UserEvent payload on channel i. A hello that does not
// match the consumer's configuration is an error.
func (g *GateVerifier) Event(i int, p []byte) error {
	c := &g.ch[i]
	if h, err := decodeHello(p); err == nil {
		if h.Writer != i || h.Writers != g.w || h.Readers != g.r {
			return fmt.Errorf("producer partition %d of %d with %d subpartitions does not match this consumer (channel %d of -writers %d, -readers %d)",
				h.Writer, h.Writers, h.Readers, i, g.w, g.r)
		}
		if c.hello {
			g.st.Invalid++
			return nil
		}
		if h.ChecksumEvery < 0 || h.ChecksumEvery&(h.ChecksumEvery-1) != 0 {
			return fmt.Errorf("producer partition %d: checksum interval %d is not a power of two", h.Writer, h.ChecksumEvery)
		}
		c.mask = uint64(max(h.ChecksumEvery, 1) - 1)
		c.hello = true
		c.sel = selCode(h.Selector)
		c.check = checkBase(c.writer, g.subWord(c))
		if g.selector == "" {
			g.selector, g.recordSize, g.hello = h.Selector, h.RecordSize, h
		}
		if h.RecordSize != 0 && g.fill == nil {
			g.fill = fillerPattern(h.RecordSize)
		}
		if h.ClockAbs != 0 && g.clock.Abs != 0 && h.BootID == g.clock.BootID {
			c.latency = true
			c.offset = g.clock.Abs - h.ClockAbs
		}
		return nil
	}
	if len(p) >= 16 && [4]byte(p[:4]) == endMagic {
		w := int(binary.LittleEndian.Uint32(p[4:]))
		first := int(binary.LittleEndian.Uint32(p[8:]))
		n := int(binary.LittleEndian.Uint32(p[12:]))
		if w != i || len(p) != 16+8*n {
			g.st.Invalid++
			return nil
		}
		if g.sub >= first && g.sub < first+n {
			c.sent = binary.LittleEndian.Uint64(p[16+8*(g.sub-first):])
			c.haveEnd = true
		}
		return nil
	}
	return nil // an unrelated user event
}

// EndOfData marks channel i's end of records.
func (g *GateVerifier) EndOfData(i int) { g.ch[i].eod = true }

// Done reports whether channel i delivered its final counts and
// EndOfData: a failure after that loses nothing.
func (g *GateVerifier) Done(i int) bool { return g.ch[i].eod && g.ch[i].haveEnd }

// ReceivedAny reports whether any channel has delivered anything.
func (g *GateVerifier) ReceivedAny() bool {
	for i := range g.ch {
		if g.ch[i].hello {
			return true
		}
	}
	return false
}

// Record verifies one record from channel i.
func (g *GateVerifier) Record(i int, r []byte) {
	c := &g.ch[i]
	g.st.Records++
	g.st.Bytes += int64(len(r))
	if !c.hello {
		g.st.Invalid++
		return
	}
	n := len(r)
	if n >= FullSize {
		end := n - 8
		seq := binary.LittleEndian.Uint64(r[0:8])
		key := binary.LittleEndian.Uint32(r[8:12])
		writer := binary.LittleEndian.Uint32(r[12:16])
		var want uint64
		if seq&^sampledBit64&c.mask == 0 {
			want = xxhash.Sum64(r[:end])
		} else {
			want = headerCheck(seq, key, writer, binary.LittleEndian.Uint64(r[16:24]))
		}
		if want != binary.LittleEndian.Uint64(r[end:]) {
			g.st.ChecksumFailures++
			return
		}
		if writer != c.writer || !g.routed(c, key, r[8:12]) {
			g.st.Invalid++
			return
		}
		sampled := seq&sampledBit64 != 0
		seq &^= sampledBit64
		if sampled && c.latency {
			now := g.now() + c.offset
			send := int64(binary.LittleEndian.Uint64(r[16:24]))
			if g.meters == nil {
				g.hist.Record(now - send)
			} else {
				if send >= g.from {
					g.hist.Record(now - send)
				}
				g.meters[i].Arrive(send, now, n)
			}
		}
		g.sequence(c, seq)
		return
	}
	if n < MinRecordSize {
		g.st.Invalid++
		return
	}
	w0 := binary.LittleEndian.Uint32(r[0:4])
	word := binary.LittleEndian.Uint32(r[4:8])
	seq31 := w0 & seqMask31
	if n != len(g.fill) || (n > MinRecordSize && uint64(seq31)&c.mask == 0 && string(r[MinRecordSize:]) != string(g.fill[MinRecordSize:])) {
		g.st.ChecksumFailures++
		return
	}
	if c.sel == 1 {
		if !g.routed(c, word, r[4:8]) {
			g.st.Invalid++
			return
		}
	} else if w0&sampledBit == 0 && word != checkWordFrom(c.check, seq31) {
		g.st.ChecksumFailures++
		return
	}
	if seq31 == uint32(c.next)&seqMask31 {
		c.next++ // in order: the common case
	} else if !g.compactSequence(c, seq31) {
		return
	}
	if w0&sampledBit != 0 && c.latency {
		now := uint32((g.now() + c.offset) >> tsUnitShift)
		g.hist.Record(int64(now-word) << tsUnitShift)
	}
}

// compactSequence accounts a compact record out of order: it extends the
// 31-bit sequence around the expected one (false: too far back to be
// valid).
func (g *GateVerifier) compactSequence(c *chanState, seq31 uint32) bool {
	d := (seq31 - uint32(c.next)) & seqMask31
	var seq uint64
	if d < 1<<30 {
		seq = c.next + uint64(d)
	} else {
		back := uint64(1<<31 - d)
		if back > c.next {
			g.st.Invalid++
			return false
		}
		seq = c.next - back
	}
	g.sequence(c, seq)
	return true
}

func (g *GateVerifier) subWord(c *chanState) uint32 {
	if c.sel == 2 {
		return broadcastKey
	}
	return uint32(g.sub)
}

// routed checks that a record with this key belongs in this gate.
func (g *GateVerifier) routed(c *chanState, key uint32, keyBytes []byte) bool {
	switch c.sel {
	case 1:
		return HashSub(keyBytes, g.r) == g.sub
	case 2:
		return key == broadcastKey
	}
	return key == uint32(g.sub)
}

// sequence accounts a record's sequence number.
func (g *GateVerifier) sequence(c *chanState, seq uint64) {
	if seq == c.next {
		c.next++
		return
	}
	if seq > c.next {
		c.holes = append(c.holes, span{c.next, seq})
		c.next = seq + 1
		return
	}
	// Lower than expected: a late record filling a hole, or a duplicate.
	for k := range c.holes {
		h := &c.holes[k]
		if seq >= h.lo && seq < h.hi {
			g.st.Reordered++
			switch {
			case h.hi-h.lo == 1:
				c.holes = append(c.holes[:k], c.holes[k+1:]...)
			case seq == h.lo:
				h.lo++
			case seq == h.hi-1:
				h.hi--
			default:
				c.holes = append(c.holes, span{})
				copy(c.holes[k+2:], c.holes[k+1:])
				c.holes[k+1] = span{seq + 1, h.hi}
				c.holes[k].hi = seq
			}
			return
		}
	}
	g.st.Duplicated++
}

// Stats returns the gate's counts, computing lost records from the
// producers' final counts: numbers never received (holes and the tail).
func (g *GateVerifier) Stats() Stats {
	s := g.st
	for i := range g.ch {
		c := &g.ch[i]
		for _, h := range c.holes {
			s.Lost += int64(h.hi - h.lo)
		}
		if !c.haveEnd {
			s.Incomplete++
			continue
		}
		s.Sent += int64(c.sent)
		if c.sent > c.next {
			s.Lost += int64(c.sent - c.next)
		} else if c.next > c.sent {
			s.Invalid += int64(c.next - c.sent)
		}
	}
	s.Hist = g.hist
	for i := range g.meters {
		s.Channels = append(s.Channels, g.meters[i].Stats())
	}
	return s
}
