package compress_test

import (
	"bytes"
	"fmt"

	"github.com/qexchange/qexchange/exchange/compress"
)

// The producer compresses a buffer into a second segment and sends
// whichever is smaller; the consumer decompresses into a pooled segment.
func Example() {
	const segmentSize = 32 << 10
	payload := bytes.Repeat([]byte("status=shipped region=eu-west "), 1000)

	c := compress.NewCompressor()
	wireBuf := make([]byte, segmentSize) // a pooled segment on the producer
	n, ok := c.Compress(wireBuf, payload)
	fmt.Println("compressed:", ok, "smaller:", n < len(payload))

	d, err := compress.NewDecompressor(segmentSize)
	if err != nil {
		panic(err)
	}
	out := make([]byte, segmentSize) // a pooled segment on the consumer
	m, err := d.Decompress(out, wireBuf[:n])
	fmt.Println("restored:", err == nil && bytes.Equal(out[:m], payload))

	// Output:
	// compressed: true smaller: true
	// restored: true
}
