package rpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// ProtocolVersion is the version of the message format and of the call
// semantics. It is the first byte of every message and part of the ALPN
// (see ALPN); a peer with another version fails the handshake with a
// HandshakeError naming both.
const ProtocolVersion uint8 = 1

// ALPN is the TLS application protocol of the control plane on both
// transports. On a QUIC socket shared with the data plane it is what tells
// the two apart.
const ALPN = "qexchange-rpc/1"

// Message kinds.
const (
	kindCall      uint8 = 1
	kindHandshake uint8 = 2
	kindResponse  uint8 = 3
)

// Response codes: what the client turns into a typed error.
const (
	codeOK uint8 = iota
	codeRemote
	codeEndpointNotFound
	codeNotStarted
	codeFenced
	codeUnknownMethod
	codeBadMessage
	codeTooLarge
	codeMailboxFull
	codeTimeout
	codeVersion
	codeGatewayMismatch
	codeClosed
	codeCount // first unknown code
)

// headerSize is the fixed part of a message body: version, kind, code,
// state, call id (8), timeout in milliseconds (4). It is frozen across
// protocol versions so that a peer can always read another's version and
// call id, and answer a version mismatch or an oversized message.
const headerSize = 16

// frameHeaderSize is the big-endian uint32 body length before every body.
const frameHeaderSize = 4

// message is one request or response. The strings are length-prefixed
// (uint16) after the header; the payload is the rest of the body, the
// JSON encoding of the request or response value.
type message struct {
	version uint8
	kind    uint8
	code    uint8 // responses
	state   State // responses with codeNotStarted
	callID  uint64
	timeout time.Duration // calls: what is left of the caller's deadline

	endpoint string
	method   string // calls: method; handshakes: the expected gateway type
	token    FencingToken
	detail   string // responses: the error message, or the served gateway type

	payload []byte
}

// encodedSize is the body size of m.
func (m *message) encodedSize() int {
	return headerSize + 8 + len(m.endpoint) + len(m.method) + len(m.token) + len(m.detail) + len(m.payload)
}

// appendFrame appends m's frame (length prefix and body) to dst. Strings
// longer than 65535 bytes are truncated: names and tokens are short, and
// error details are cut rather than refused.
func appendFrame(dst []byte, m *message) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.encodedSize()))
	dst = append(dst, m.version, m.kind, m.code, uint8(m.state))
	dst = binary.BigEndian.AppendUint64(dst, m.callID)
	ms := m.timeout.Milliseconds()
	if m.timeout > 0 && ms == 0 {
		ms = 1
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(min(max(ms, 0), math.MaxUint32)))
	for _, s := range [...]string{m.endpoint, m.method, string(m.token), m.detail} {
		s = s[:min(len(s), math.MaxUint16)]
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
		dst = append(dst, s...)
	}
	return append(dst, m.payload...)
}

// errShortHeader: a body shorter than the fixed header.
var errShortHeader = errors.New("body shorter than the message header")

// decodeHeader reads the fixed header of body into m.
func decodeHeader(body []byte, m *message) error {
	if len(body) < headerSize {
		return errShortHeader
	}
	m.version, m.kind, m.code, m.state = body[0], body[1], body[2], State(body[3])
	m.callID = binary.BigEndian.Uint64(body[4:12])
	m.timeout = time.Duration(binary.BigEndian.Uint32(body[12:16])) * time.Millisecond
	return nil
}

// decodeMessage decodes a whole body. It checks the structure only; the
// version, kind and code are checked by the caller, which knows what it
// expects. The payload aliases body.
func decodeMessage(body []byte, m *message) error {
	if err := decodeHeader(body, m); err != nil {
		return err
	}
	rest := body[headerSize:]
	var strs [4]string
	for i := range strs {
		if len(rest) < 2 {
			return fmt.Errorf("truncated before string %d", i)
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if len(rest) < n {
			return fmt.Errorf("string %d of %d bytes overruns the body", i, n)
		}
		strs[i] = string(rest[:n])
		rest = rest[n:]
	}
	m.endpoint, m.method, m.token, m.detail = strs[0], strs[1], FencingToken(strs[2]), strs[3]
	m.payload = rest
	if m.kind < kindCall || m.kind > kindResponse {
		return fmt.Errorf("unknown message kind %d", m.kind)
	}
	if m.kind == kindResponse && m.code >= codeCount {
		return fmt.Errorf("unknown response code %d", m.code)
	}
	return nil
}

// frameError is what readFrame returns for a frame it read whole but
// cannot use: the stream stays in sync and the call (callID, if the
// header was readable) gets an error response.
type frameError struct {
	callID    uint64
	hasHeader bool
	code      uint8 // codeBadMessage or codeTooLarge
	detail    string
}

func (e *frameError) Error() string { return e.detail }

// readFrame reads one frame from r into buf (grown as needed up to
// maxSize) and decodes it. A frame larger than maxSize is skipped (its
// header kept for the call id) and reported as a *frameError with
// codeTooLarge; an undecodable body as a *frameError with codeBadMessage.
// Any other error (EOF, I/O) leaves r out of sync.
func readFrame(r io.Reader, buf *[]byte, maxSize int, m *message) error {
	var lenBuf [frameHeaderSize]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return err
	}
	n := int64(binary.BigEndian.Uint32(lenBuf[:]))
	if n > int64(maxSize) {
		fe := &frameError{code: codeTooLarge, detail: fmt.Sprintf("message of %d bytes exceeds the maximum of %d", n, maxSize)}
		var hdr [headerSize]byte
		take := min(n, headerSize)
		if _, err := io.ReadFull(r, hdr[:take]); err != nil {
			return err
		}
		if take == headerSize && decodeHeader(hdr[:], m) == nil {
			fe.callID, fe.hasHeader = m.callID, true
		}
		if _, err := io.CopyN(io.Discard, r, n-take); err != nil {
			return err
		}
		return fe
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	body := (*buf)[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if err := decodeMessage(body, m); err != nil {
		fe := &frameError{code: codeBadMessage, detail: "undecodable message: " + err.Error()}
		if decodeHeader(body, m) == nil {
			fe.callID, fe.hasHeader = m.callID, true
		}
		return fe
	}
	return nil
}
