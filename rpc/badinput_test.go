package rpc

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// rawExchange sends frame bytes over the client's existing connection to
// addr and returns the response to callID (TCP: multiplexed by call id;
// QUIC: a stream of its own).
func rawExchange(t *testing.T, client *Service, addr string, frame []byte, callID uint64) *message {
	t.Helper()
	ctx := ctxT(t)
	cc, err := client.conn(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	switch c := cc.(type) {
	case *tcpClient:
		ch := make(chan *message, 1)
		c.mu.Lock()
		c.pending[callID] = ch
		c.mu.Unlock()
		c.fw.mu.Lock() // no call is in flight: nobody else writes
		_, err := c.c.Write(frame)
		c.fw.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-ch:
			return m
		case <-ctx.Done():
			t.Fatal("no response")
		}
	case *quicClient:
		str, err := c.c.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := str.Write(frame); err != nil {
			t.Fatal(err)
		}
		str.Close()
		m := new(message)
		var buf []byte
		if err := readFrame(str, &buf, 1<<20, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Fatalf("unknown connection type %T", cc)
	return nil
}

func rawFrame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// TestBadInput: garbage, oversized frames, unknown methods and payloads
// of the wrong type each get a typed error, and the same connection keeps
// serving healthy calls.
func TestBadInput(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			const max = 4096
			server, client := pair(t, tr, func(c *Config) { c.MaxMessageSize = max })
			startEndpoint(t, server, EndpointConfig{ID: "e"}, func(e *Endpoint) {
				_ = Register(e, "inc", func(_ context.Context, r incReq) (incResp, error) { return incResp{r.By + 1}, nil })
				_ = Register(e, "big", func(_ context.Context, n int) (string, error) { return strings.Repeat("x", n), nil })
			})
			g := connect(t, client, server, "e")
			ctx := ctxT(t)
			healthy := func(when string) {
				t.Helper()
				if r, err := Call[incReq, incResp](ctx, g, "inc", incReq{41}); err != nil || r.Value != 42 {
					t.Fatalf("healthy call after %s: %v, %v", when, r, err)
				}
			}
			healthy("nothing")
			cc, _ := client.conn(ctx, server.Addr())

			// Garbage with a readable header: strings overrun the body.
			garbage := make([]byte, headerSize+5)
			garbage[0], garbage[1] = ProtocolVersion, kindCall
			binary.BigEndian.PutUint64(garbage[4:], 1001)
			copy(garbage[headerSize:], []byte{0xff, 0xff, 1, 2, 3})
			if m := rawExchange(t, client, server.Addr(), rawFrame(garbage), 1001); m.code != codeBadMessage {
				t.Fatalf("garbage: code %d %q", m.code, m.detail)
			}
			healthy("garbage")

			// Oversized: the server skips the body and answers the call.
			big := &message{version: ProtocolVersion, kind: kindCall, callID: 1002, endpoint: "e", method: "inc", payload: make([]byte, 2*max)}
			m := rawExchange(t, client, server.Addr(), appendFrame(nil, big), 1002)
			err := server.responseError("p", big, m)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("oversized: %v", err)
			}
			healthy("an oversized message")

			// Oversized from the client's own API: refused before sending.
			if _, err := Call[string, int](ctx, g, "inc", strings.Repeat("y", 2*max)); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("oversized request: %v", err)
			}
			// An oversized response is refused by the server.
			if _, err := Call[int, string](ctx, g, "big", 2*max); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("oversized response: %v", err)
			}
			healthy("an oversized response")

			// Unknown method; a payload of the wrong type; unknown kind.
			if _, err := Call[int, int](ctx, g, "nope", 1); !errors.Is(err, ErrUnknownMethod) || !strings.Contains(err.Error(), "nope") {
				t.Fatalf("unknown method: %v", err)
			}
			if _, err := Call[string, incResp](ctx, g, "inc", "not a struct"); !errors.Is(err, ErrBadMessage) {
				t.Fatalf("wrong payload type: %v", err)
			}
			odd := &message{version: ProtocolVersion, kind: 9, callID: 1003, endpoint: "e"}
			if m := rawExchange(t, client, server.Addr(), appendFrame(nil, odd), 1003); m.code != codeBadMessage {
				t.Fatalf("unknown kind: code %d", m.code)
			}
			healthy("bad calls")
			if cc2, _ := client.conn(ctx, server.Addr()); cc2 != cc {
				t.Fatal("a bad call replaced the connection")
			}
		})
	}
}

// TestHostileServer: a TCP server that answers with a request instead of
// a response, then with garbage: the first call fails as a bad message,
// the second as a lost connection; nothing hangs.
func TestHostileServer(t *testing.T) {
	_, client := pair(t, TCP, nil)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", client.tls.serverTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var buf []byte
		var req message
		if readFrame(c, &buf, 1<<20, &req) != nil {
			return
		}
		bogus := message{version: ProtocolVersion, kind: kindCall, callID: req.callID, endpoint: "x"}
		if _, err := c.Write(appendFrame(nil, &bogus)); err != nil {
			return
		}
		if readFrame(c, &buf, 1<<20, &req) != nil {
			return
		}
		_, _ = c.Write([]byte{0, 0, 0, 2, 0xde, 0xad}) // no header: unattributable
		_, _ = io.Copy(io.Discard, c)
	}()
	ctx := ctxT(t)
	if _, err := client.Connect(ctx, ln.Addr().String(), "e", "e"); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("request instead of a response: %v", err)
	}
	if _, err := client.Connect(ctx, ln.Addr().String(), "e", "e"); !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("garbage response: %v", err)
	}
	ln.Close()
	<-done
}
