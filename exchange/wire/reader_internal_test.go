package wire

import (
	"bytes"
	"errors"
	"testing"
)

// TestReadBodyFollowsArrivedBytes: a frame header that claims far more
// than arrives makes a small reader allocate about what arrived (issue:
// QUIC streams claiming the maximum frame size each held the whole claim).
func TestReadBodyFollowsArrivedBytes(t *testing.T) {
	opts := Options{StreamMode: true, MaxFrameSize: 16 << 20}
	claim := 16 << 20
	frame := AppendFrame(nil, &TaskEventRequest{Event: make([]byte, claim-HeaderSize-taskEventFixed)}, opts)
	data := frame[:HeaderSize+45] // the header and 45 bytes, then the stream ends
	r := NewReaderSize(bytes.NewReader(data), opts, 512)
	if _, err := r.Next(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Next: %v, want ErrTruncated", err)
	}
	if c := cap(r.scratch); c > 4<<10 {
		t.Fatalf("%d bytes allocated for 45 received (claim %d)", c, claim)
	}
}
