package exchange

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/qexchange/qexchange/exchange/wire"
)

// Sentinel errors. Every error the package returns wraps one of them, so
// callers can branch with errors.Is and read details with errors.As.
var (
	// ErrClosed: the environment, partition, gate, channel or transport
	// has been closed or released.
	ErrClosed = errors.New("exchange: closed")
	// ErrInvalidConfig: a size, count or option is out of range.
	ErrInvalidConfig = errors.New("exchange: invalid configuration")
	// ErrInsufficientBuffers: the network buffer pool cannot supply the
	// buffers a partition or gate requires. Raised at setup, never as a
	// hang at run time.
	ErrInsufficientBuffers = errors.New("exchange: insufficient network buffers")
	// ErrPartitionNotFound: the producer node has no such partition (yet).
	ErrPartitionNotFound = errors.New("exchange: partition not found")
	// ErrAlreadyConsumed: a second consumer asked for a subpartition that
	// allows one.
	ErrAlreadyConsumed = errors.New("exchange: subpartition already has a consumer")
	// ErrSubpartitionOutOfRange: a selector or request named a
	// subpartition that does not exist.
	ErrSubpartitionOutOfRange = errors.New("exchange: subpartition out of range")
	// ErrRecordTooLarge: a record exceeds the configured maximum.
	ErrRecordTooLarge = errors.New("exchange: record too large")
	// ErrRemote: the remote side failed one channel (or, when fatal, the
	// whole connection).
	ErrRemote = errors.New("exchange: remote error")
	// ErrConnectionLost: the connection carrying a channel broke.
	ErrConnectionLost = errors.New("exchange: connection lost")
	// ErrProtocol: the peer violated the protocol (bad frame, sequence
	// gap, data without credit, ...).
	ErrProtocol = errors.New("exchange: protocol error")
	// ErrFinished: the partition was already finished; no more records.
	ErrFinished = errors.New("exchange: partition finished")
	// ErrAuthentication: the TLS handshake with a peer failed: its
	// certificate is not trusted, it refused ours, or it does not speak
	// TLS. Permanent: it is never retried.
	ErrAuthentication = errors.New("exchange: authentication failed")
)

// ConfigError names the field that is out of range.
type ConfigError struct {
	Field  string
	Value  any
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("exchange: invalid %s = %v: %s", e.Field, e.Value, e.Reason)
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func configError(field string, value any, reason string) error {
	return &ConfigError{Field: field, Value: value, Reason: reason}
}

// InsufficientBuffersError says how much memory a setup step needed.
type InsufficientBuffersError struct {
	// What needed the buffers ("partition p/3", "input gate g").
	What        string
	Need        int // segments required
	Have        int // segments still free for required use
	SegmentSize int
}

func (e *InsufficientBuffersError) Error() string {
	return fmt.Sprintf("exchange: insufficient network buffers for %s: need %d x %d KiB, have %d; raise NetworkMemory (or lower the channel count or SegmentSize)",
		e.What, e.Need, e.SegmentSize/1024, e.Have)
}

func (e *InsufficientBuffersError) Unwrap() error { return ErrInsufficientBuffers }

// PartitionNotFoundError names the missing partition and the node asked.
type PartitionNotFoundError struct {
	Partition PartitionID
	Peer      string
	// Waited is how long the consumer retried before giving up.
	Waited time.Duration
	// Cause is why the consumer gave up early: the answer of
	// GateConfig.PartitionStateChecker (nil: retries ran out).
	Cause error
}

func (e *PartitionNotFoundError) Error() string {
	s := fmt.Sprintf("exchange: partition %s not found", e.Partition)
	if e.Peer != "" {
		s += " at " + e.Peer
	}
	if e.Waited > 0 {
		s += fmt.Sprintf(" (retried for %v)", e.Waited.Round(time.Millisecond))
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *PartitionNotFoundError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrPartitionNotFound, e.Cause}
	}
	return []error{ErrPartitionNotFound}
}

// RemoteError is an error reported by the producer side.
type RemoteError struct {
	Peer    string
	Channel ChannelID
	// Fatal: the whole connection failed, not just this channel.
	Fatal bool
	// Code is the ErrorResponse's code (0 when not from the wire).
	Code    wire.ErrorCode
	Message string
}

// Is lets errors.Is match the sentinel the remote code stands for.
func (e *RemoteError) Is(target error) bool {
	switch e.Code {
	case wire.CodeDuplicateReceiver:
		return target == ErrAlreadyConsumed
	case wire.CodeProtocol:
		return target == ErrProtocol
	case wire.CodeInsufficientCapacity:
		return target == ErrInsufficientBuffers
	}
	return false
}

// Error says what the producer did: "producer 127.0.0.1:7003 refused
// channel ...: DuplicateReceiver: subpartition 3 of partition ... already
// has a consumer".
func (e *RemoteError) Error() string {
	verb := "failed"
	switch e.Code {
	case wire.CodeDuplicateReceiver, wire.CodeVersionMismatch, wire.CodeInsufficientCapacity:
		verb = "refused"
	}
	if e.Fatal {
		return fmt.Sprintf("exchange: producer %s %s the connection: %s", e.Peer, verb, e.Message)
	}
	return fmt.Sprintf("exchange: producer %s %s channel %s: %s", e.Peer, verb, e.Channel, e.Message)
}

func (e *RemoteError) Unwrap() error { return ErrRemote }

// ConnectionError reports a lost connection, naming the peer.
type ConnectionError struct {
	Peer string
	Err  error
}

func (e *ConnectionError) Error() string {
	var (
		dns *net.DNSError
		op  *net.OpError
	)
	switch {
	case errors.As(e.Err, &dns) && dns.IsNotFound:
		return fmt.Sprintf("exchange: cannot connect to %s: host not found: %v", e.Peer, e.Err)
	case errors.As(e.Err, &op) && op.Op == "dial":
		return fmt.Sprintf("exchange: cannot connect to %s: %v", e.Peer, e.Err)
	}
	return fmt.Sprintf("exchange: connection to %s lost: %v", e.Peer, e.Err)
}

func (e *ConnectionError) Unwrap() []error { return []error{ErrConnectionLost, e.Err} }

// AuthError reports a refused TLS handshake, naming the peer and the
// cause (docs/architecture.md, "Failure policy"). It matches
// ErrAuthentication, not ErrConnectionLost: a channel does not retry it.
type AuthError struct {
	Peer string
	Err  error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("exchange: TLS handshake with %s refused: %v", e.Peer, e.Err)
}

func (e *AuthError) Unwrap() []error { return []error{ErrAuthentication, e.Err} }

// ProtocolError reports a protocol violation by a peer.
type ProtocolError struct {
	Peer string
	Err  error
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("exchange: protocol error from %s: %v", e.Peer, e.Err)
}

func (e *ProtocolError) Unwrap() []error { return []error{ErrProtocol, e.Err} }

// SequenceError: a buffer arrived out of sequence on a channel.
type SequenceError struct {
	Channel  ChannelID
	Expected int32
	Got      int32
}

func (e *SequenceError) Error() string {
	return fmt.Sprintf("exchange: channel %s: buffer out of sequence: expected %d, got %d", e.Channel, e.Expected, e.Got)
}

func (e *SequenceError) Unwrap() error { return ErrProtocol }
