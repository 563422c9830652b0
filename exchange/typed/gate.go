package typed

import (
	"context"

	"github.com/qexchange/qexchange/exchange"
)

// Element is a decoded record or an event, with the index of the channel
// it came from.
type Element[T any] struct {
	Channel int
	// Value is the decoded record; the zero value for events.
	Value T
	// Event is nil for records.
	Event exchange.Event
}

// Gate decodes what an exchange.InputGate returns. Like InputGate.Next,
// Next is for one goroutine at a time.
type Gate[T any] struct {
	gate  *exchange.InputGate
	codec Codec[T]
}

// NewGate reads g through codec.
func NewGate[T any](g *exchange.InputGate, codec Codec[T]) *Gate[T] {
	return &Gate[T]{gate: g, codec: codec}
}

// Next returns the next value or event. Its errors are InputGate.Next's
// (io.EOF at a clean end), plus a *DecodeError for a record the codec
// rejects; the gate goes on after one.
func (g *Gate[T]) Next(ctx context.Context) (Element[T], error) {
	e, err := g.gate.Next(ctx)
	if err != nil || e.Event != nil {
		return Element[T]{Channel: e.Channel, Event: e.Event}, err
	}
	v, err := g.codec.Decode(e.Record)
	if err != nil {
		return Element[T]{Channel: e.Channel}, err
	}
	return Element[T]{Channel: e.Channel, Value: v}, nil
}

// NextBatch is exchange.InputGate.NextBatch for values: it waits like
// Next for the next value or event, hands it to fn, then, without waiting
// again, every further value of the same buffer until the buffer ends or
// fn returns false. Its errors are Next's; a record the codec rejects
// ends the batch with its *DecodeError, and the next call goes on after
// it. fn must not call Next or NextBatch.
func (g *Gate[T]) NextBatch(ctx context.Context, fn func(Element[T]) bool) error {
	var decErr error
	err := g.gate.NextBatch(ctx, func(e exchange.Element) bool {
		if e.Event != nil {
			return fn(Element[T]{Channel: e.Channel, Event: e.Event})
		}
		v, err := g.codec.Decode(e.Record)
		if err != nil {
			decErr = err
			return false
		}
		return fn(Element[T]{Channel: e.Channel, Value: v})
	})
	if err != nil {
		return err
	}
	return decErr
}

// InputGate is the underlying gate, for acknowledgements, task events
// and Close.
func (g *Gate[T]) InputGate() *exchange.InputGate { return g.gate }
