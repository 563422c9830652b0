package wire_test

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/qexchange/qexchange/exchange/wire"
)

var (
	recvA = wire.ID{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}
	partA = wire.ID{0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f}
)

var modes = []wire.Options{{StreamMode: false}, {StreamMode: true}}

func modeName(o wire.Options) string {
	if o.StreamMode {
		return "stream"
	}
	return "tcp"
}

// sampleMessages returns one or more valid instances of every message type
// (values, not pointers). BufferResponses have Size set; their payload is
// payloadFor(Size).
func sampleMessages() []wire.Message {
	return []wire.Message{
		wire.Hello{Version: wire.ProtocolVersion, Features: 0xdeadbeef, MaxFrameSize: uint32(wire.DefaultMaxFrameSize)},
		wire.BufferResponse{ReceiverID: recvA, Sequence: 0, Backlog: 0, DataType: wire.DataBuffer, Size: 0},
		wire.BufferResponse{ReceiverID: recvA, Sequence: 42, Backlog: 7, DataType: wire.DataBuffer, Compressed: true, Size: 1000},
		wire.BufferResponse{ReceiverID: recvA, Sequence: -1, Backlog: 1 << 30, DataType: wire.PriorityBarrier, Size: 32 * 1024},
		wire.BufferResponse{ReceiverID: recvA, Sequence: 1<<31 - 1, Backlog: 3, DataType: wire.EventBuffer, Size: 17},
		wire.BufferResponse{ReceiverID: recvA, Sequence: 9, DataType: wire.AlignedBarrier, Size: 5},
		wire.BufferResponse{ReceiverID: recvA, Sequence: 10, DataType: wire.PriorityEventBuffer, Size: 3},
		wire.ErrorResponse{Fatal: false, ReceiverID: recvA, Code: wire.CodePartitionNotFound, Message: "partition f0e1 not found"},
		wire.ErrorResponse{Fatal: true, Code: wire.CodeInternal, Message: "boom ☃ ünïcödé"},
		wire.ErrorResponse{Fatal: true, Code: wire.CodeInsufficientCapacity},
		wire.ErrorResponse{Code: wire.CodeVersionMismatch, ReceiverID: recvA, Message: strings.Repeat("x", wire.MaxErrorMessageLen)},
		wire.PartitionRequest{PartitionID: partA, Subpartition: 3, ReceiverID: recvA, Credit: 2},
		wire.PartitionRequest{PartitionID: partA, Subpartition: 0, ReceiverID: recvA, Credit: 0},
		wire.TaskEventRequest{PartitionID: partA, ReceiverID: recvA, Event: []byte("user event payload")},
		wire.TaskEventRequest{PartitionID: partA, ReceiverID: recvA},
		wire.CancelPartitionRequest{ReceiverID: recvA},
		wire.CloseRequest{},
		wire.AddCredit{ReceiverID: recvA, Credit: 1},
		wire.AddCredit{ReceiverID: recvA, Credit: 1<<31 - 1},
		wire.AddCredit{ReceiverID: recvA, Credit: 0},  // decodes; chanproto fails the channel
		wire.AddCredit{ReceiverID: recvA, Credit: -3}, // likewise
		wire.ResumeConsumption{ReceiverID: recvA},
		wire.AckAllUserRecordsProcessed{ReceiverID: recvA},
		wire.BacklogAnnouncement{ReceiverID: recvA, Backlog: 0},
		wire.BacklogAnnouncement{ReceiverID: recvA, Backlog: 12345},
		wire.NewBufferSize{ReceiverID: recvA, BufferSize: 4096},
	}
}

func payloadFor(size int32) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i*7 + int(size))
	}
	return p
}

// value dereferences pointer messages (as returned by Reader.Next).
func value(m wire.Message) wire.Message {
	rv := reflect.ValueOf(m)
	if rv.Kind() == reflect.Pointer {
		return rv.Elem().Interface().(wire.Message)
	}
	return m
}

// normalize returns what m decodes to under streamMode: receiverIds not on
// the wire are zero, empty events are nil, values not pointers.
func normalize(m wire.Message, streamMode bool) wire.Message {
	m = value(m)
	switch v := m.(type) {
	case wire.BufferResponse:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.ErrorResponse:
		if streamMode || v.Fatal {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.PartitionRequest:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.TaskEventRequest:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		if len(v.Event) == 0 {
			v.Event = nil
		} else {
			v.Event = bytes.Clone(v.Event)
		}
		return v
	case wire.CancelPartitionRequest:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.AddCredit:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.ResumeConsumption:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.AckAllUserRecordsProcessed:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.BacklogAnnouncement:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	case wire.NewBufferSize:
		if streamMode {
			v.ReceiverID = wire.ID{}
		}
		return v
	}
	return m
}

func assertSame(t testing.TB, got, want wire.Message, streamMode bool) {
	t.Helper()
	g, w := normalize(got, streamMode), normalize(want, streamMode)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("message mismatch:\n got  %#v\n want %#v", g, w)
	}
}

// encodeStream encodes msgs as consecutive frames, each BufferResponse
// followed by its payload.
func encodeStream(msgs []wire.Message, opts wire.Options) []byte {
	var out []byte
	for _, m := range msgs {
		out = wire.AppendFrame(out, m, opts)
		if br, ok := value(m).(wire.BufferResponse); ok {
			out = append(out, payloadFor(br.Size)...)
		}
	}
	return out
}

// frame builds a raw frame with an explicit length, magic and id.
func frame(length uint32, magic uint32, id byte, body []byte) []byte {
	b := []byte{
		byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length),
		byte(magic >> 24), byte(magic >> 16), byte(magic >> 8), byte(magic),
		id,
	}
	return append(b, body...)
}

// rawFrame builds a well-formed frame around body.
func rawFrame(id wire.MsgID, body []byte) []byte {
	return frame(uint32(wire.HeaderSize+len(body)), wire.Magic, byte(id), body)
}

func name(m wire.Message, i int) string { return fmt.Sprintf("%02d_%s", i, m.ID()) }
