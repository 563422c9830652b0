package exchange

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/qexchange/qexchange/exchange/wire"
)

// Transport is the pluggable network layer of one node. The model
// (partitions, subpartition views, input channels, credit) lives in this package; a
// transport only moves the messages of docs/architecture.md ("wire protocol") between nodes.
//
// Server side: Listen accepts connections and, for every PartitionRequest,
// opens a SubpartitionView through the ViewProvider and writes the view's
// responses back. Client side: OpenChannel sends a PartitionRequest for one
// RemoteInputChannel and delivers what arrives to its ChannelHandler.
//
// Implementations must be safe for concurrent use.
type Transport interface {
	// Name names the transport in logs and results ("tcp", "quic", "mem").
	Name() string
	// Listen starts serving partition requests answered by provider. It
	// returns once the transport is listening; serving goes on until Close.
	Listen(ctx context.Context, provider ViewProvider) error
	// Addr is the address peers connect to; empty before Listen.
	Addr() string
	// OpenChannel requests subpartition req.Subpartition of req.Partition
	// from the node at addr for one input channel. The connection to addr
	// is shared by all channels to that node. Messages for the channel go
	// to h; h.OnError is called at most once and ends the channel.
	OpenChannel(ctx context.Context, addr string, req ChannelRequest, h ChannelHandler) (ChannelLink, error)
	// Close stops listening, closes every connection (failing their
	// channels with ErrClosed) and waits for the transport's goroutines.
	Close() error
}

// TransportOptions are what the Environment hands a TransportFactory.
type TransportOptions struct {
	// ListenAddr is the address to listen on ("127.0.0.1:0" if empty).
	ListenAddr string
	// SegmentSize is the network buffer size; frames are at most
	// wire.MaxFrameSizeFor(SegmentSize) bytes.
	SegmentSize int
	// Logger receives the transport's logs.
	Logger zerolog.Logger
}

// TransportFactory creates a transport; the Environment calls it once.
type TransportFactory func(TransportOptions) (Transport, error)

// ChannelRequest is the client side of a PartitionRequest.
type ChannelRequest struct {
	Partition     PartitionID
	Subpartition  int
	Receiver      ChannelID
	InitialCredit int
}

// ChannelHandler receives what a transport reads for one input channel. It
// is implemented by the RemoteInputChannel. Calls for one channel are made
// from one goroutine at a time, in arrival order.
type ChannelHandler interface {
	// RequestBuffer returns an empty buffer of capacity >= size to read a
	// BufferResponse payload into. Data buffers are backed by credit: a
	// data buffer sent without credit gets an error (a protocol violation,
	// which fails the channel). Events get an unpooled buffer.
	RequestBuffer(dataType wire.DataType, size int) (Buffer, error)
	// OnBuffer delivers a received buffer (length = payload size) and
	// passes its ownership to the channel. An empty data buffer (size 0,
	// which hands back unusable credit) is delivered as a zero Buffer
	// without calling RequestBuffer.
	OnBuffer(b Buffer, sequence int32, backlog int)
	// OnBacklog delivers a BacklogAnnouncement.
	OnBacklog(backlog int)
	// TakeUnannouncedCredit returns the credit to announce now and resets
	// it. The transport calls it when it gets round to sending the
	// AddCredit scheduled by ChannelLink.NotifyCreditAvailable, so credit
	// that accumulates in between goes out in one message; it sends
	// nothing if the result is 0.
	TakeUnannouncedCredit() int
	// OnError fails the channel. err wraps one of the package's sentinel
	// errors (ErrPartitionNotFound, ErrRemote, ErrConnectionLost,
	// ErrProtocol, ErrClosed).
	OnError(err error)
}

// ChannelLink is the transport's side of one open input channel: the
// messages a consumer sends to the producer. Implementations must not block
// on the network (queue and return).
type ChannelLink interface {
	// NotifyCreditAvailable schedules an AddCredit: the transport calls
	// ChannelHandler.TakeUnannouncedCredit when it writes it.
	NotifyCreditAvailable()
	ResumeConsumption() error
	AckAllRecordsProcessed() error
	SendTaskEvent(event []byte) error
	NewBufferSize(size int) error
	// Close cancels the partition request (CancelPartitionRequest on TCP,
	// a stream reset on QUIC) and releases the channel's share of the
	// connection. After Close no handler method is called.
	Close() error
}

// ViewProvider opens producer-side views for partition requests. The
// PartitionManager implements it.
type ViewProvider interface {
	// OpenView creates the view for one remote input channel.
	// onAvailable is called (possibly before OpenView returns) each time
	// the view goes from "nothing to send" to "something to send"; the
	// transport then calls Next until Response.More is false. onAvailable
	// must not block or call back into the view. Errors: a
	// *PartitionNotFoundError (wire.CodePartitionNotFound) when the
	// partition is not registered, ErrAlreadyConsumed, or a *ConfigError.
	OpenView(req ViewRequest, onAvailable func(*SubpartitionView)) (*SubpartitionView, error)
}

// ViewRequest is the server side of a PartitionRequest.
type ViewRequest struct {
	Partition     PartitionID
	Subpartition  int
	Receiver      ChannelID
	InitialCredit int
	// Peer names the requesting node in logs and errors.
	Peer string
}
