package rpc

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Every error this package returns wraps one of them, so
// callers test with errors.Is; the typed errors below carry the details
// for errors.As.
var (
	// ErrTimeout: the call did not complete before its deadline.
	ErrTimeout = errors.New("rpc: timeout")
	// ErrEndpointNotFound: the remote service hosts no endpoint with the id.
	ErrEndpointNotFound = errors.New("rpc: endpoint not found")
	// ErrNotStarted: the endpoint exists but is not in the started state
	// (stopped, terminating or terminated).
	ErrNotStarted = errors.New("rpc: endpoint not started")
	// ErrFenced: the call's fencing token is not the endpoint's.
	ErrFenced = errors.New("rpc: fenced out")
	// ErrConnectionLost: the connection to the peer failed or closed
	// before the call completed.
	ErrConnectionLost = errors.New("rpc: connection lost")
	// ErrRemote: the remote handler returned an error (see RemoteError).
	ErrRemote = errors.New("rpc: remote handler error")
	// ErrUnknownMethod: the endpoint has no handler for the method.
	ErrUnknownMethod = errors.New("rpc: unknown method")
	// ErrBadMessage: a message could not be decoded (garbage, a payload
	// that does not decode into the handler's type, a bad version).
	ErrBadMessage = errors.New("rpc: bad message")
	// ErrTooLarge: a message exceeds Config.MaxMessageSize.
	ErrTooLarge = errors.New("rpc: message too large")
	// ErrMailboxFull: the endpoint's bounded mailbox is full.
	ErrMailboxFull = errors.New("rpc: mailbox full")
	// ErrHandshake: connecting a gateway failed the remote handshake
	// (protocol version or gateway type mismatch).
	ErrHandshake = errors.New("rpc: handshake failed")
	// ErrNotMainThread: ValidateRunsInMainThread was called off the
	// endpoint's main goroutine.
	ErrNotMainThread = errors.New("rpc: not running in the endpoint's main goroutine")
	// ErrClosed: the service or endpoint is closed.
	ErrClosed = errors.New("rpc: closed")
	// ErrInvalidConfig: a Config or argument is invalid (see ConfigError).
	ErrInvalidConfig = errors.New("rpc: invalid configuration")
)

// ConfigError names the invalid field of a Config.
type ConfigError struct {
	Field  string
	Value  any
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("rpc: invalid %s=%v: %s", e.Field, e.Value, e.Reason)
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// TimeoutError: a call to Method of Endpoint at Peer did not complete
// within Timeout (its deadline when it was sent). AtServer: the server
// saw the deadline pass before the handler finished. It matches
// ErrTimeout.
type TimeoutError struct {
	Peer, Endpoint, Method string
	Timeout                time.Duration
	AtServer               bool
}

func (e *TimeoutError) Error() string {
	where := ""
	if e.AtServer {
		where = " (expired at the server)"
	}
	return fmt.Sprintf("rpc: call %s.%s at %s timed out after %v%s", e.Endpoint, e.Method, e.Peer, e.Timeout.Round(time.Millisecond), where)
}

func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// EndpointError reports a call rejected because of the endpoint: it wraps
// ErrEndpointNotFound, ErrNotStarted, ErrUnknownMethod or ErrMailboxFull.
type EndpointError struct {
	Peer     string // "" for a local endpoint
	Endpoint string
	Method   string // "" for a handshake or a local RunAsync
	State    State  // the endpoint's state for ErrNotStarted
	Err      error  // the sentinel
}

func (e *EndpointError) Error() string {
	where := e.Endpoint
	if e.Method != "" {
		where += "." + e.Method
	}
	if e.Peer != "" {
		where += " at " + e.Peer
	}
	switch e.Err {
	case ErrNotStarted:
		return fmt.Sprintf("%v: %s is %s", e.Err, where, e.State)
	default:
		return fmt.Sprintf("%v: %s", e.Err, where)
	}
}

func (e *EndpointError) Unwrap() error { return e.Err }

// FencedError: a call carried fencing token Got while the endpoint's
// token is Expected ("" when the endpoint has none yet). It matches
// ErrFenced.
type FencedError struct {
	Endpoint, Method string
	Expected, Got    FencingToken
}

func (e *FencedError) Error() string {
	if e.Expected == "" {
		return fmt.Sprintf("rpc: fenced out: %s.%s has no fencing token yet (call carried %q)", e.Endpoint, e.Method, e.Got)
	}
	return fmt.Sprintf("rpc: fenced out: %s.%s expects fencing token %q, call carried %q", e.Endpoint, e.Method, e.Expected, e.Got)
}

func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// ConnectionLostError: the connection to Peer broke (Cause) while a call
// was in flight or being made. It matches ErrConnectionLost.
type ConnectionLostError struct {
	Peer  string
	Cause error
}

func (e *ConnectionLostError) Error() string {
	if e.Cause == nil {
		return "rpc: connection lost to " + e.Peer
	}
	return fmt.Sprintf("rpc: connection lost to %s: %v", e.Peer, e.Cause)
}

func (e *ConnectionLostError) Is(target error) bool { return target == ErrConnectionLost }
func (e *ConnectionLostError) Unwrap() error        { return e.Cause }

// RemoteError is the error a remote handler returned, with its message
// kept. It matches ErrRemote.
type RemoteError struct {
	Peer, Endpoint, Method string
	Message                string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("rpc: %s.%s at %s failed: %s", e.Endpoint, e.Method, e.Peer, e.Message)
}

func (e *RemoteError) Is(target error) bool { return target == ErrRemote }

// MessageError reports a message that was garbage (ErrBadMessage) or too
// large (ErrTooLarge), on either side; Peer says where it was detected
// ("local" for a request refused before sending).
type MessageError struct {
	Peer   string
	Detail string
	Err    error // ErrBadMessage or ErrTooLarge
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("%v (peer %s): %s", e.Err, e.Peer, e.Detail)
}

func (e *MessageError) Unwrap() error { return e.Err }

// HandshakeError: connecting a gateway failed because the peer speaks
// another protocol version or serves another gateway type. It matches
// ErrHandshake.
type HandshakeError struct {
	Peer, Endpoint string
	// ClientVersion and ServerVersion are the protocol versions.
	ClientVersion, ServerVersion uint8
	// Expected is the gateway type the client asked for; Served is the
	// one the endpoint serves ("" when the versions differ).
	Expected, Served string
}

func (e *HandshakeError) Error() string {
	if e.ClientVersion != e.ServerVersion {
		return fmt.Sprintf("rpc: handshake with %s at %s failed: client speaks protocol version %d, server speaks %d",
			e.Endpoint, e.Peer, e.ClientVersion, e.ServerVersion)
	}
	return fmt.Sprintf("rpc: handshake with %s at %s failed: client expects gateway %q, endpoint serves %q",
		e.Endpoint, e.Peer, e.Expected, e.Served)
}

func (e *HandshakeError) Is(target error) bool { return target == ErrHandshake }
