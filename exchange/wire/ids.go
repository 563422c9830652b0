package wire

import "encoding/hex"

// ID is a 16-byte identifier on the wire: the receiverId (the consumer's
// input channel id, Flink's InputChannelID) and the partition id.
type ID [16]byte

// String returns the id as 32 lower-case hex digits.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is all zeros (the value an omitted receiverId
// decodes to in stream mode).
func (id ID) IsZero() bool { return id == ID{} }
