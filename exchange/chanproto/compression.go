package chanproto

import (
	"fmt"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/compress"
	"github.com/qexchange/qexchange/exchange/wire"
)

// decompress turns a received compressed data buffer into plain records
// in the same credit-backed segment (in place: no second buffer, no
// change to credit). The Decompressor is the channel's, made at its
// first compressed buffer, and used only by the goroutine that delivers
// the channel's frames. A payload that does not decode fails this
// channel only: the framing is intact (architecture.md, "Failure
// policy"). On error buf has been released.
func (c *Channel) decompress(buf exchange.Buffer, dt wire.DataType) (exchange.Buffer, error) {
	if dt.IsEvent() {
		buf.Release()
		return exchange.Buffer{}, fmt.Errorf("%w: compressed %s: events are never compressed", exchange.ErrProtocol, dt)
	}
	room := buf.Room()
	if c.dec == nil {
		d, err := compress.NewDecompressor(len(room))
		if err != nil {
			buf.Release()
			return exchange.Buffer{}, err
		}
		c.dec = d
	}
	n, err := c.dec.DecompressInPlace(room, buf.Len())
	if err != nil {
		buf.Release()
		return exchange.Buffer{}, fmt.Errorf("channel %s: %w", c.Receiver, err)
	}
	return buf.WithLen(n), nil
}
