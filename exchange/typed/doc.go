// Package typed is a thin, generic layer over exchange.RecordWriter and
// exchange.InputGate for records that are Go values rather than bytes.
//
// A Codec[T] appends a value's encoding to a byte slice and decodes it
// from the slice a gate hands out. A Writer[T] encodes into a reused
// scratch buffer and emits through the partition, picking the
// subpartition from the value itself (HashKey hashes a key the caller
// extracts, with the same xxhash as exchange.Hash, so typed and untyped
// producers of one job agree). A Gate[T] decodes what exchange.InputGate
// returns and passes events through unchanged.
//
// Writer.EmitAll and Gate.NextBatch are the batch forms of Emit and
// Next (exchange.RecordWriter.EmitAll, exchange.InputGate.NextBatch): no
// call into the partition per record on the writer's side, and no
// per-record synchronisation on either.
//
// Built-in codecs: Bytes, String, and Fixed for fixed-size values
// (integers, floats, and structs or arrays of them) in little-endian
// binary. Fixed-size values cost no allocation per record on either side.
package typed
