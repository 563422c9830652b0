package exchange

import "context"

// NextBatch is Next for a loop that handles records in place: it waits
// like Next for the next element, hands it to fn, and then, without
// waiting again, every further record of the same buffer, until the
// buffer ends or fn returns false. It returns nil after such a batch, and
// otherwise what Next would have returned (io.EOF at the end, a
// *ChannelError, ErrClosed, the context's error). Elements come in Next's
// order; Element.Record is valid only until fn returns, and fn must not
// call Next or NextBatch. Like Next, it is for one goroutine at a time.
//
// Per record it costs less than Next: no call returning an Element
// through memory, only the length prefix and fn (docs/architecture.md,
// "One record's path").
func (g *InputGate) NextBatch(ctx context.Context, fn func(Element) bool) error {
	e, err := g.Next(ctx)
	if err != nil {
		return err
	}
	if !fn(e) {
		return nil
	}
	// After a record, curD is the deserializer it came from; after an
	// event, nil.
	d, i := g.curD, g.cur
	for d != nil && !g.closing.Load() {
		rec, ok := d.nextInBuffer()
		if !ok || !fn(Element{Channel: i, Record: rec}) {
			return nil
		}
	}
	return nil
}
