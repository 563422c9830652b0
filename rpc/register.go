package rpc

import (
	"context"
	"encoding/json"
	"fmt"
)

// method is a registered handler with its typed codec.
type method struct {
	name   string
	decode func([]byte) (any, error)
	invoke func(context.Context, any) (any, error)
	encode func(any) ([]byte, error)
}

// Register makes fn the handler of method name on ep. Calls run fn on ep's
// main goroutine, one at a time, with a context that ends at the caller's
// deadline or when the connection closes. Req and Resp travel as JSON (see
// the package documentation). Registering a name twice, or an empty name,
// is an error.
func Register[Req, Resp any](ep *Endpoint, name string, fn func(ctx context.Context, req Req) (Resp, error)) error {
	if name == "" || fn == nil {
		return &ConfigError{"method", name, "needs a name and a handler"}
	}
	m := &method{
		name: name,
		decode: func(b []byte) (any, error) {
			var r Req
			if err := json.Unmarshal(b, &r); err != nil {
				return nil, err
			}
			return r, nil
		},
		invoke: func(ctx context.Context, a any) (any, error) { return fn(ctx, a.(Req)) },
		encode: func(v any) ([]byte, error) { return json.Marshal(v.(Resp)) },
	}
	ep.methodsMu.Lock()
	defer ep.methodsMu.Unlock()
	if _, dup := ep.methods[name]; dup {
		return &ConfigError{"method", name, "already registered on " + ep.id}
	}
	ep.methods[name] = m
	return nil
}

func (e *Endpoint) method(name string) *method {
	e.methodsMu.RLock()
	defer e.methodsMu.RUnlock()
	return e.methods[name]
}

// invokeSafely runs a handler, turning a panic into an error: a bad
// handler fails its call, not the endpoint.
func invokeSafely(ctx context.Context, m *method, arg any) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler %s panicked: %v", m.name, r)
		}
	}()
	return m.invoke(ctx, arg)
}
