// Package chanproto is the per-channel protocol of the exchange, written
// once for every transport (docs/architecture.md, "wire protocol" and
// "failure policy").
//
// The consumer half is Channel: it turns an inbound BufferResponse,
// BacklogAnnouncement or ErrorResponse into calls of the channel's
// exchange.ChannelHandler (credit-backed buffer request, payload fill, the
// empty-buffer rule, exchange.ErrorFromWire) and queues what the consumer
// sends on a ControlQueue, which coalesces AddCredit announcements.
//
// The producer half is Outbound: it applies the consumer's control
// messages to the exchange.SubpartitionView (Apply) and yields the frames
// to write (Next); a Scheduler serves the outbounds of one connection
// round robin, like grpc-go's control buffer.
//
// One failure policy holds on every transport: a violation that belongs
// to one channel (a bad AddCredit, a task event for another partition, a
// buffer larger than the consumer's frame limit) fails that channel only,
// with an ErrorResponse of code wire.CodeProtocol that the consumer sees
// as an *exchange.RemoteError matching exchange.ErrProtocol; a framing
// error fails the connection (on QUIC, whose channels each have a stream,
// the stream).
//
// Peers is the reference-counted set of connections to remote nodes,
// with channels to one node spread evenly over K connections (each new
// channel takes the least used). Node is a transport's lifecycle: its
// listener, the connections it serves and the goroutines its Close waits
// for. Admission bounds the connections a node serves.
//
// A transport keeps only what is its own: sockets, streams, demultiplexing
// and how frames reach the network.
package chanproto
