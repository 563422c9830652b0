// Package spill keeps BLOCKING result partitions on disk (Flink's
// FileChannelManager plus a BoundedBlockingSubpartition-like file). A
// blocking partition is fully produced, then consumed: by any number of
// consumers, each from the start, possibly long after the producer
// finished and again after a consumer failed (isPersistent /
// isReconnectable in Flink's ResultPartitionType).
//
// # Directories and crashed processes
//
// A Manager works in a spill directory (Config.Dir, default
// os.TempDir()/qexchange-spill) shared by the processes of a host. At
// start it creates its own subdirectory, proc-<pid>-<random>, opens it and
// holds an exclusive flock(2) on it until Close. The kernel drops a
// flock when its holder dies, however it dies, so a subdirectory whose
// lock can be taken belongs to a dead process: NewManager sweeps the spill
// directory, locks each proc-* subdirectory it can and removes it. A
// live process's lock cannot be taken, so its files are never touched,
// and pid reuse cannot fool the sweep as a pid liveness check could.
// Between mkdir and flock a sweep could remove a fresh subdirectory;
// after locking, the Manager checks that the directory at its path is
// still the one it locked and otherwise starts over. flock is unreliable
// on some network file systems: use a local disk.
//
// A directory that cannot be created or written fails NewManager with an
// *IOError naming it (ErrNotWritable), so a misconfiguration shows at
// startup, not at the first spill.
//
// # The partition file
//
// A Writer appends each buffer of any subpartition, in the order they
// come, to one file: a 16-byte header (subpartition, length, data type,
// flags such as compressed, xxhash checksum) then the payload. Buffers
// are gathered in a write buffer (Config.WriteBufferSize, default 1 MiB)
// and written with one sequential write when it is full, so the
// producer's memory is that buffer whatever the data size. The index
// (per subpartition, the offset and length of each of its buffers) stays
// in memory at 8 bytes per buffer (offset, event bit, length packed in a
// uint64): 256 KiB per GiB of full 32 KiB buffers. A file holds at most
// 512 GiB, a buffer at most 16 MiB - 1 bytes (ErrTooLarge).
//
// A write error fails the Writer for good and removes the partial file
// at once; a full disk is an *IOError wrapping ErrDiskFull that names the
// spill directory. Finish makes the file a Partition (fsync'ed with
// Config.Sync). A Reader reads one subpartition from its start into
// caller-provided buffers, two positioned reads per buffer (header, then
// the payload straight into the destination), and checks each buffer
// against its index and checksum (*CorruptError otherwise). Readers are
// independent and may run concurrently. Release deletes the file (readers
// then fail with ErrReleased); Manager.Close releases everything and
// removes the subdirectory.
//
// # How the exchange uses it (exchange/blocking.go; docs/architecture.md, "The model")
//
//   - A ResultPartition of type BLOCKING gets a Writer from the node's
//     Manager (one Manager per Environment, Config.Dir from its config).
//     Its record writer fills segments from the partition's small pool as
//     today; each finished segment (and each flushed partial one, and
//     each event) is handed to Writer.Append with its data type, then
//     released at once, so the pool is never exhausted by a slow or
//     absent consumer. With compression (package compress, on by default
//     for BLOCKING) the producer compresses each data segment before
//     Append and sets Meta.Compressed; the work is done once however
//     often the partition is read.
//   - Finish on the partition calls Writer.Finish; only then is the
//     partition consumable. A PartitionRequest before that is answered
//     PartitionNotFound and retried by the consumer, as in Flink.
//   - Each PartitionRequest (any number, each from the start) opens a
//     view over Partition.NewReader(sub). The view's Next takes a segment
//     from the partition's own small pool (idle once the writer has
//     finished), Reader.Next(segment) fills it, and the
//     buffer goes out as a BufferResponse with Meta's data type and
//     compressed flag. Reader.Peek says, without
//     reading, whether the next buffer is an event (sent without credit)
//     and its size; Reader.Backlog is the backlog to announce (data
//     buffers not yet read). A local channel
//     reads the same way (one copy, from the page cache) and gets
//     compressed buffers decompressed in place. A consumer that fails is
//     served again by a new reader.
//   - The consumer half decompresses a compressed buffer into a pooled
//     segment (compress.Decompressor).
//   - Releasing the partition calls Partition.Release; Environment.Close
//     calls Manager.Close.
package spill
