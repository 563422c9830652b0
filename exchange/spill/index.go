package spill

// An index entry packs a buffer's header offset (39 bits: files up to
// 512 GiB), whether it is an event (1 bit: a view must know that without
// reading it, as events need no credit) and its payload length (24 bits:
// buffers up to 16 MiB - 1) into one uint64, so the index costs 8 bytes
// per spilled buffer: 256 KiB per GiB of full 32 KiB buffers.
const (
	lengthBits = 24
	eventBit   = 1 << lengthBits
	offsetBits = 64 - lengthBits - 1
	// MaxBufferSize is the largest payload one spilled buffer may have.
	MaxBufferSize = 1<<lengthBits - 1
	// MaxFileSize is the largest partition file (512 GiB).
	MaxFileSize = 1 << offsetBits
	// chunkLen entries (32 KiB) per index chunk: the index grows by
	// chunks, never copying what it holds, and wastes at most part of its
	// last chunk.
	chunkLen = 4096
	// maxSubpartitions bounds the per-partition index slice.
	maxSubpartitions = 1 << 20
)

func packEntry(offset int64, event bool, length int) uint64 {
	e := uint64(offset)<<(lengthBits+1) | uint64(length)
	if event {
		e |= eventBit
	}
	return e
}

func unpackEntry(e uint64) (offset int64, event bool, length int) {
	return int64(e >> (lengthBits + 1)), e&eventBit != 0, int(e & MaxBufferSize)
}

// index lists one subpartition's buffers in order.
type index struct {
	chunks [][]uint64 // all full (chunkLen entries) but the last
	n      int
	events int // entries with the event bit
}

func (x *index) add(e uint64) {
	last := len(x.chunks) - 1
	if last < 0 || len(x.chunks[last]) == chunkLen {
		// Start small: a partition with many nearly empty subpartitions
		// must not cost a full chunk each.
		x.chunks = append(x.chunks, make([]uint64, 0, 16))
		last++
	}
	x.chunks[last] = append(x.chunks[last], e)
	x.n++
	if e&eventBit != 0 {
		x.events++
	}
}

func (x *index) at(i int) uint64 { return x.chunks[i/chunkLen][i%chunkLen] }
