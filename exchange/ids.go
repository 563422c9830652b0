package exchange

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"

	"github.com/cespare/xxhash/v2"
)

// PartitionID identifies a ResultPartition across the cluster.
type PartitionID [16]byte

// ChannelID identifies one input channel (Flink's InputChannelID, the
// receiverId on the wire).
type ChannelID [16]byte

// NewPartitionID returns a random partition id.
func NewPartitionID() PartitionID { return PartitionID(random16()) }

// NewChannelID returns a random channel id.
func NewChannelID() ChannelID { return ChannelID(random16()) }

// PartitionIDFromName derives a partition id from a job name and a
// producer index, so that separate processes agree on ids without a
// coordinator.
func PartitionIDFromName(job string, index int) PartitionID {
	var id PartitionID
	d := xxhash.New()
	_, _ = d.WriteString("qexchange/partition/")
	_, _ = d.WriteString(job)
	binary.BigEndian.PutUint64(id[:8], d.Sum64())
	binary.BigEndian.PutUint32(id[8:12], uint32(index))
	binary.BigEndian.PutUint32(id[12:], uint32(xxhash.Sum64String(job)))
	return id
}

func (id PartitionID) String() string { return hex.EncodeToString(id[:]) }
func (id ChannelID) String() string   { return hex.EncodeToString(id[:]) }

func random16() [16]byte {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (Go >= 1.24).
	return b
}
