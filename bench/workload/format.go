package workload

import (
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// Record format. Every record carries a sequence number per channel (per
// (writer, subpartition) pair), so the consumer can count lost, duplicated
// and reordered records exactly; what else it carries depends on the size.
//
// Full records (RecordSize >= FullSize = 32 bytes), little endian:
//
//	[0:8]    bit 63: sampled flag; bits 0-62: sequence number in the
//	         channel
//	[8:12]   key: the hash selector's key; for round robin the target
//	         subpartition; for broadcast 0xFFFFFFFF
//	[12:16]  writer (producer partition) index
//	[16:24]  send time: ns since the producer's start (monotonic clock):
//	         read fresh for sampled records; other records carry the last
//	         reading (at or before their send time)
//	[24:n-8] filler (a fixed pattern)
//	[n-8:n]  xxhash64 of [0:n-8]
//
// Verified for every record: the checksum over every other byte, the
// writer index (the channel's producer), the routing (key ==
// subpartition, or xxhash(key) % R == subpartition for hash) and the
// sequence; latency for sampled records.
//
// Compact records (MinRecordSize = 8 <= RecordSize < 32 bytes):
//
//	[0:4]  bit 31: sampled flag; bits 0-30: sequence number mod 2^31 (the
//	       consumer extends it to 64 bits: a jump of more than 2^30 is
//	       ambiguous, which is far beyond any reordering seen here)
//	[4:8]  sampled records: send time in 64 ns units since the producer's
//	       start, mod 2^32 (latencies up to 274 s decode correctly);
//	       other records: a check word derived from (writer, subpartition,
//	       sequence) — for the hash selector, a pseudo-random key instead.
//	       These 4 bytes are the hash selector's key.
//	[8:n]  filler (a fixed pattern)
//
// Verified for every record: the sequence (loss, duplication,
// reordering); the filler bytes; for round robin and broadcast the check
// word of unsampled records (so a record from the wrong producer or
// subpartition, or a corrupted sequence, is caught); for hash the routing.
// Latency for sampled records. Not verified for compact records: a
// checksum over the sequence and timestamp fields (there is no room), and
// the writer index except through the check word.
//
// Verification modes (-verify): VerifyFull checks all of the above on
// every record. VerifySampled keeps the sequence (so loss, duplication and
// reordering are still counted exactly), the writer, the routing and a
// check word on every record, and computes and checks the O(size) part —
// the xxhash64 of full records, the filler of compact ones — only on the
// records whose sequence number in the channel is a multiple of
// SampledChecksumEvery. Full records that skip the xxhash carry instead,
// in the same last 8 bytes, headerCheck of their first 24 bytes. Running
// the same benchmark in both modes gives the cost of the checksum.
//
// Sampling: one record in SampleEvery per writer is sampled (default
// DefaultSampleEvery = 16; every record with a rate limit or
// -sample-every 1): reading the monotonic clock on both sides for every
// record would cost more than the rest of the record's verification.
const (
	MinRecordSize = 8
	FullSize      = 32
	// DefaultSampleEvery applies without a rate limit.
	DefaultSampleEvery = 16
	// SampledChecksumEvery: with VerifySampled, one record in this many
	// per channel carries the full check (a power of two).
	SampledChecksumEvery = 64

	sampledBit   = 1 << 31
	sampledBit64 = uint64(1) << 63
	seqMask31    = sampledBit - 1
	tsUnitShift  = 6 // compact timestamps in 64 ns units
	broadcastKey = 0xFFFFFFFF
)

// Verification modes.
const (
	VerifyFull    = "full"
	VerifySampled = "sampled"
)

// ChecksumEvery is the full-check interval of a verification mode (1:
// every record).
func ChecksumEvery(mode string) int {
	if mode == VerifySampled {
		return SampledChecksumEvery
	}
	return 1
}

// Selector kinds.
const (
	RoundRobin = "roundrobin"
	Hash       = "hash"
	Broadcast  = "broadcast"
)

// selCode is the selector as sent in the hello.
func selCode(s string) uint8 {
	switch s {
	case Hash:
		return 1
	case Broadcast:
		return 2
	}
	return 0
}

func selName(c uint8) string {
	switch c {
	case 1:
		return Hash
	case 2:
		return Broadcast
	}
	return RoundRobin
}

// HashKey is the key function of the hash selector: the 4 key bytes of
// either format.
func HashKey(r []byte) []byte {
	if len(r) >= FullSize {
		return r[8:12]
	}
	if len(r) >= 8 {
		return r[4:8]
	}
	return r
}

// HashSub is the subpartition exchange.Hash picks for key.
func HashSub(key []byte, n int) int { return int(xxhash.Sum64(key) % uint64(n)) }

// hashSubU32 is HashSub of a little-endian uint32 key.
func hashSubU32(k uint32, n int) int {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], k)
	return int(xxhash.Sum64(b[:]) % uint64(n))
}

// checkWord is the compact format's check over (writer, sub, seq).
func checkWord(writer, sub uint32, seq31 uint32) uint32 {
	return checkWordFrom(checkBase(writer, sub), seq31)
}

// checkBase is the part of checkWord fixed for a channel (writer, sub):
// both sides compute it once per channel, not per record.
func checkBase(writer, sub uint32) uint32 {
	return writer*0x85EBCA77 ^ bits.RotateLeft32(sub*0xC2B2AE3D, 13)
}

// checkWordFrom is checkWord given the channel's checkBase.
func checkWordFrom(base, seq31 uint32) uint32 {
	x := seq31*0x9E3779B1 ^ base
	x ^= x >> 15
	x *= 0x2C1B3C6D
	x ^= x >> 12
	return x
}

// headerCheck is the check word of a full record without its xxhash64
// (VerifySampled): a mix of the header fields, so a corrupted sequence,
// key, writer or timestamp is still caught at the cost of a few
// multiplications. seq is the raw field, sampled bit included.
func headerCheck(seq uint64, key, writer uint32, ts uint64) uint64 {
	x := seq*0x9E3779B97F4A7C15 ^ bits.RotateLeft64((uint64(writer)<<32|uint64(key))*0xC2B2AE3D27D4EB4F, 31) ^ bits.RotateLeft64(ts*0x165667B19E3779F9, 17)
	x ^= x >> 29
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 32
	return x
}

// mix32 scrambles a counter into a hash key.
func mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7FEB352D
	x ^= x >> 15
	x *= 0x846CA68B
	x ^= x >> 16
	return x
}

// fillerPattern returns the filler bytes of an n-byte record.
func fillerPattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return p
}

// Verification describes, for the config JSON and the table, what the
// consumer checks at record size n.
func Verification(n int, mode string) string {
	if mode == VerifySampled {
		every := fmt.Sprint(SampledChecksumEvery)
		if n >= FullSize {
			return "sampled: every record: sequence per channel (loss, duplication, reordering), header check word, producer index, routing; xxhash64 checksum of 1 record in " + every + " per channel; latency of sampled records"
		}
		return "sampled: every record: sequence per channel (loss, duplication, reordering), check word (round robin/broadcast) or routing (hash); filler of 1 record in " + every + " per channel; latency of sampled records; no checksum over sequence/timestamp (records < 32 bytes)"
	}
	if n >= FullSize {
		return "every record: sequence per channel (loss, duplication, reordering), xxhash64 checksum, producer index, routing; latency of sampled records"
	}
	return "every record: sequence per channel (loss, duplication, reordering), filler, check word (round robin/broadcast) or routing (hash); latency of sampled records; no checksum over sequence/timestamp (records < 32 bytes)"
}
