// Package compress compresses network buffers one at a time with LZ4 in
// the block format (not the frame format): a buffer is compressed on its
// own, with no state carried from one buffer to the next, so any buffer
// can be decompressed alone, in any order, by any consumer. This is how
// Flink compresses blocking partitions (BufferCompressor /
// BufferDecompressor with its LZ4 block codec).
//
// # What the lead wires (docs/architecture.md, "Wire protocol")
//
// The BufferResponse already carries a `compressed` flag.
//
//   - Producer half: one Compressor per writer goroutine (per view or per
//     connection writer; it is not safe for concurrent use). Before a DATA
//     buffer goes out, take a segment from the partition's pool as dst and
//     call Compress(dst, payload). If it reports ok, send dst[:n] with
//     Compressed = true and release the original buffer; if not (the
//     buffer did not shrink), release dst and send the original buffer
//     with Compressed = false. Events are never compressed. For BLOCKING
//     partitions compression happens once, before the buffer is spilled
//     (package spill keeps the flag per buffer), so every read reuses it.
//   - Consumer half: one Decompressor per channel (or per connection
//     reader), built with the node's segment size. A BufferResponse with
//     Compressed = true is read into its credit-backed segment as usual;
//     then a second segment from the gate's pool is the dst of
//     Decompress, and the compressed one is recycled (it still stands for
//     the credit). A *CorruptError fails that channel only
//     (architecture.md, "Failure policy": the framing is intact).
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
//     table (lz4.Compressor, 136 KiB, reset cheaply per buffer), and LZ4
//     block decoding needs no state (checked with testing.AllocsPerRun
//     and the -benchmem benchmarks).
package compress
