// Package partitionstate is the control-plane side of Flink's
// requestPartitionState: producers report their partitions' state to a
// coordinator, and a consumer whose partition request got
// PartitionNotFound asks the coordinator whether to keep waiting or to
// fail now, instead of retrying blind for the whole backoff.
//
// The coordinator hosts a Tracker, an rpc endpoint. A producer's node
// reports Deploying, Consumable (first data), Finished, Released or
// Failed (with the reason) through a Client; so can the coordinator
// itself (Tracker.Expect, Tracker.ProducerFailed when it loses a worker).
// A consumer's node asks with Client.CheckPartitionState, which has the
// shape of the hook it plugs into on the exchange side: nil means keep
// retrying (the producer is deploying, running, or unknown, or the
// coordinator cannot be reached: today's behaviour), an error means fail
// the channel now, with the producer's failure reason
// (ErrProducerFailed) or because the partition was released
// (ErrPartitionReleased).
//
// States only move forward (Deploying, Consumable, Finished, Released);
// Failed is final.
//
// # The exchange side
//
// The exchange calls it through a small hook, GateConfig's
// PartitionStateChecker (an interface with CheckPartitionState, which
// *Client implements): on PartitionNotFound a remote channel asks at once,
// then either fails with a PartitionNotFoundError whose Cause is the
// checker's error, or waits out its backoff and retries. hook_test.go has
// a consumer of a producer that failed before its partition existed fail
// within 500 ms with the producer's reason. Producers
// report Consumable and Finished through Client.Report (a
// PartitionConfig callback on first data and on finish would let the
// exchange do it itself).
package partitionstate
