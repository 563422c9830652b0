package wire

import (
	"encoding/binary"
	"fmt"
)

// ProtocolVersion is the version of this wire protocol, carried in Hello.
const ProtocolVersion uint16 = 1

// helloTag ends every Hello body.
const helloTag = "qxchange"

// helloLen: version u16 | features u32 | maxFrameSize u32 | tag 8.
const helloLen = 2 + 4 + 4 + len(helloTag)

// Hello opens every connection (TCP) or stream (QUIC) and is sent by both
// sides, so that incompatible peers fail with a clear error (CheckHello)
// instead of garbage.
//
// Body: version u16 | features u32 | maxFrameSize u32 | "qxchange".
type Hello struct {
	Version      uint16 // ProtocolVersion of the sender
	Features     uint32 // feature bits; none defined yet, ignore unknown bits
	MaxFrameSize uint32 // the largest frame the sender accepts
}

// NewHello returns the Hello to send for opts: this ProtocolVersion and
// opts' effective maximum frame size.
func NewHello(opts Options) Hello {
	return Hello{Version: ProtocolVersion, MaxFrameSize: uint32(opts.EffectiveMaxFrameSize())}
}

func (Hello) ID() MsgID { return IDHello }

// AppendBody appends the body; streamMode does not change it.
func (m Hello) AppendBody(dst []byte, streamMode bool) []byte {
	dst = binary.BigEndian.AppendUint16(dst, m.Version)
	dst = binary.BigEndian.AppendUint32(dst, m.Features)
	dst = binary.BigEndian.AppendUint32(dst, m.MaxFrameSize)
	return append(dst, helloTag...)
}

func (m Hello) validate() error {
	if m.MaxFrameSize < MinMaxFrameSize || m.MaxFrameSize > MaxMaxFrameSize {
		return fieldErr(IDHello, "maxFrameSize", int64(m.MaxFrameSize),
			fmt.Sprintf("must be in [%d, %d]", MinMaxFrameSize, MaxMaxFrameSize))
	}
	return nil
}

// DecodeHello decodes a Hello body. A body without the "qxchange" tag is
// ErrNotOurProtocol. It does not check the version: call CheckHello.
func DecodeHello(body []byte, streamMode bool) (Hello, error) {
	var m Hello
	if len(body) >= helloLen && string(body[10:helloLen]) != helloTag {
		return m, fmt.Errorf("%w: Hello tag %q, want %q", ErrNotOurProtocol, body[10:helloLen], helloTag)
	}
	if err := checkLen(IDHello, body, helloLen); err != nil {
		return m, err
	}
	m.Version = binary.BigEndian.Uint16(body)
	m.Features = binary.BigEndian.Uint32(body[2:])
	m.MaxFrameSize = binary.BigEndian.Uint32(body[6:])
	if err := m.validate(); err != nil {
		return Hello{}, err
	}
	return m, nil
}

// CheckHello checks the peer's Hello: ErrVersionMismatch (naming both
// versions) if h.Version is not ProtocolVersion, and ErrInvalidField for an
// out-of-range MaxFrameSize.
func CheckHello(h Hello) error {
	if h.Version != ProtocolVersion {
		return fmt.Errorf("%w: peer speaks version %d, this side speaks version %d",
			ErrVersionMismatch, h.Version, ProtocolVersion)
	}
	return h.validate()
}
