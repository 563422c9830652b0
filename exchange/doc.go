// Package exchange is the data plane of a stream processor's network
// stack, after Apache Flink's: producers write records into result
// partitions, consumers read them through input gates, and credit-based
// flow control keeps every byte in bounded, pooled network memory.
//
// # Model
//
// An Environment is one node. It owns a NetworkBufferPool (default 64 MiB
// in 32 KiB segments), a registry of partitions, and a Transport chosen by
// name ("tcp", "quic", or the in-memory "mem" used by tests).
//
// A ResultPartition is the output of one producer task: one subpartition
// per consumer. A RecordWriter serialises length-prefixed records into the
// subpartition a ChannelSelector picks (RoundRobin, Hash, Broadcast,
// Forward); records may span buffers, and emitting one allocates nothing.
// Partially filled buffers become readable on a timer (PartitionConfig.
// BufferTimeout, default 100 ms), after every record (FlushEveryRecord),
// or only when full (FlushFullBuffersOnly).
//
// An InputGate is the input of one consumer task: one channel per
// subpartition it reads. Next returns records and events fairly across
// channels. A channel whose ChannelSpec has no address reads a partition
// of the same Environment directly (no network, no copy); the others go
// through the transport and are governed by credit: each remote channel
// owns exclusive buffers (default 2), borrows floating ones from its gate
// (default 8) when the producer reports a backlog, and the producer sends
// one data buffer per credit. A slow consumer therefore holds back only
// its own producer, never the connection it shares with other channels.
//
// Events travel in-band, in order with the records: EndOfPartition,
// EndOfData (acknowledged with InputGate.AckAllRecordsProcessed),
// CheckpointBarrier (aligned: blocks its subpartition until
// ResumeConsumption; unaligned: overtakes queued data), CancelCheckpoint
// and UserEvent. Consumers send task events upstream with SendTaskEvent.
//
// # Memory
//
// Every pool's minimum is reserved when the partition or gate is created,
// so a configuration that cannot run fails at setup with an
// *InsufficientBuffersError naming the need and the option to raise
// (Config.NetworkMemory), never with a hang at run time. Buffers are
// reference counted and return to their pool; after Environment.Close,
// BufferPool().Outstanding() is 0.
//
// # Errors
//
// Errors wrap sentinels (ErrClosed, ErrInvalidConfig,
// ErrInsufficientBuffers, ErrPartitionNotFound, ErrAlreadyConsumed,
// ErrRecordTooLarge, ErrSubpartitionOutOfRange, ErrRemote,
// ErrConnectionLost, ErrProtocol) for errors.Is, with typed details for
// errors.As. A failed channel is reported once by Next as a *ChannelError,
// and the gate then ends with a *GateFailedError holding every failure,
// never with io.EOF;
// a missing partition is retried with exponential backoff (100 ms doubling
// to 10 s) before it fails, or for GateConfig.PartitionRequestTimeout in
// total when that is set.
//
// # Metrics
//
// Config.Metrics takes a prometheus.Registerer. The node then exports,
// under Flink's names in Prometheus' snake case (qexchange_out_pool_usage,
// qexchange_back_pressured_time_ms_per_second, qexchange_num_bytes_in_total
// by locality, qexchange_output_queue_length, ...), one series per live
// partition and open gate, counted per buffer and never per record. Nil
// means off, at no cost; on adds no allocation per record.
//
// # Transports
//
// Transports implement Transport (Config.Transport takes a factory:
// tcptransport.New, quictransport.New or memtransport's); the channel
// protocol they speak is package chanproto's; the model (views, credit, sequence
// numbers) stays here, so every transport runs the same protocol and
// passes the same conformance suite (package transporttest).
package exchange
