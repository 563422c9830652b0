// Package compress compresses network buffers one at a time with LZ4 in
// the block format (not the frame format): a buffer is compressed on its
// own, with no state carried from one buffer to the next, so any buffer
// can be decompressed alone, in any order, by any consumer. This is how
// Flink compresses blocking partitions (BufferCompressor /
// BufferDecompressor with its LZ4 block codec).
//
// # How the exchange uses it (exchange/compression.go, exchange/chanproto/compression.go; docs/architecture.md, "Wire protocol")
//
// The BufferResponse already carries a `compressed` flag.
//
//   - BLOCKING partitions (on by default): the producer compresses each
//     finished data segment once, before it is spilled: Compress(scratch,
//     segment) into a segment-sized scratch slice of the spilling
//     goroutine, then spill.Writer.Append(scratch[:n]) with
//     Meta.Compressed, or the segment itself when it did not shrink. Every
//     later read reuses the compressed bytes, and the view sends them with
//     the BufferResponse's compressed flag.
//   - Pipelined partitions (PartitionConfig.Compression): the producer
//     half compresses a data buffer it owns alone (not a broadcast
//     segment, which other subpartitions read) with CompressInPlace when
//     a view takes it, and sets the flag when it returns true. A
//     Compressor is not safe for concurrent use: views take one from
//     their partition's sync.Pool per buffer.
//     Events are never compressed, and local channels read uncompressed
//     segments directly.
//   - Consumer half: one Decompressor per channel, made at its first
//     compressed buffer with the node's segment size. A BufferResponse with the flag
//     is read into its credit-backed segment as usual, then
//     DecompressInPlace(segment, size) leaves the records in that same
//     pooled segment: no second buffer to wait for, no change to credit.
//     A *CorruptError fails that channel only (architecture.md, "Failure
//     policy": the framing is intact).
//
// # Guarantees
//
//   - A buffer is sent compressed only if it shrinks: Compress writes at
//     most len(src)-1 bytes, so random data (which LZ4 cannot shrink) is
//     always sent as it is.
//   - Decompress never writes more than min(len(dst), MaxSize) bytes and
//     never panics on hostile input: a payload that does not decode, or
//     decodes to more than the bound, is a *CorruptError wrapping
//     ErrCorrupt (fuzzed by FuzzDecompress).
//   - Neither side allocates per buffer: the Compressor reuses its hash
//     table (lz4.Compressor, 136 KiB, reset cheaply per buffer), LZ4 block
//     decoding needs no state, and the in-place variants allocate their
//     one scratch buffer once (checked with testing.AllocsPerRun and the
//     -benchmem benchmarks).
package compress
