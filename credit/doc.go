// Package credit is the credit-based flow control of the exchange as pure
// logic, with no I/O and no locking: the caller serialises access.
//
// It follows Flink's CreditBasedSequenceNumberingViewReader (producer side,
// Sender) and RemoteInputChannel's BufferManager (consumer side, Receiver):
//
//  1. The consumer reserves its exclusive buffers and sends their number as
//     the initial credit in the PartitionRequest.
//  2. The producer may send one data buffer per credit; events need none.
//  3. Every buffer carries the sender's backlog. The consumer wants
//     backlog + exclusive buffers, requests floating buffers from its gate
//     for the difference, and announces new or recycled buffers as
//     AddCredit, aggregated: one announcement is scheduled when the
//     unannounced credit goes from 0 to positive, and it carries all the
//     credit accumulated by the time it is sent.
//  4. With no exclusive buffers the producer sends a BacklogAnnouncement
//     when it has data but no credit, and an empty data buffer releases
//     credit it cannot use.
//  5. Sequence numbers count every buffer of a channel; a gap or repeat is
//     an error.
package credit
