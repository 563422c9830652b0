package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange/tlsconf"
)

// TestSerialisation: 16 callers increment an unlocked counter 10^5 times
// in all; the main goroutine makes it exact.
func TestSerialisation(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, nil)
			counter := 0 // no lock: only the main goroutine touches it
			// The handler uses e, not the ep that startEndpoint returns:
			// ep is assigned on this goroutine after Start, and only the
			// network orders that before the first call, which the race
			// detector cannot see.
			ep := startEndpoint(t, server, EndpointConfig{ID: "counter"}, func(e *Endpoint) {
				if err := Register(e, "inc", func(_ context.Context, r incReq) (incResp, error) {
					if counter%1024 == 0 { // the check reads the stack: sample it
						if err := e.ValidateRunsInMainThread(); err != nil {
							return incResp{}, err
						}
					}
					counter += r.By
					return incResp{counter}, nil
				}); err != nil {
					t.Fatal(err)
				}
			})
			g := connect(t, client, server, "counter")
			const callers = 16
			// 10^5 calls on both transports, under the race detector
			// too (quic-go then costs up to ~1 ms a call on 2 cores).
			const total = 100_000
			ctx, cancel := context.WithTimeout(context.Background(), 240*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for c := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n := total / callers
					if c < total%callers {
						n++
					}
					for range n {
						if _, err := Call[incReq, incResp](ctx, g, "inc", incReq{1}); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			got, err := CallAsync(ctx, ep, func() (int, error) { return counter, nil }).Get(ctx)
			if err != nil || got != total {
				t.Fatalf("counter = %d, %v; want %d", got, err, total)
			}
		})
	}
}

// TestLifecycle walks every transition: stopped -> started -> stopped ->
// started -> terminating -> terminated, with the hooks on the main
// goroutine and calls rejected at once whenever the endpoint is not
// started.
func TestLifecycle(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, nil)
			ctx := ctxT(t)
			var ep *Endpoint
			var events []string // main goroutine only
			hook := func(name string) func(context.Context) error {
				return func(context.Context) error {
					if err := ep.ValidateRunsInMainThread(); err != nil {
						t.Errorf("%s: %v", name, err)
					}
					if ep.State() != map[string]State{"start": StateStopped, "stop": StateTerminating}[name] {
						t.Errorf("%s runs in state %s", name, ep.State())
					}
					events = append(events, name)
					return nil
				}
			}
			ep, err := server.NewEndpoint(EndpointConfig{ID: "life", OnStart: hook("start"), OnStop: hook("stop")})
			if err != nil {
				t.Fatal(err)
			}
			if err := Register(ep, "echo", func(_ context.Context, s string) (string, error) { return s, nil }); err != nil {
				t.Fatal(err)
			}
			g := connect(t, client, server, "life") // the handshake works before START
			call := func() error { _, err := Call[string, string](ctx, g, "echo", "x"); return err }
			wantNotStarted := func(state State) {
				t.Helper()
				start := time.Now()
				err := call()
				var ee *EndpointError
				if !errors.Is(err, ErrNotStarted) || !errors.As(err, &ee) || ee.State != state {
					t.Fatalf("call in state %s: %v", state, err)
				}
				if d := time.Since(start); d > 2*time.Second {
					t.Fatalf("rejection took %v, want at once", d)
				}
				if err := ep.RunAsync(func() {}); !errors.Is(err, ErrNotStarted) {
					t.Fatalf("RunAsync in state %s: %v", state, err)
				}
			}
			if ep.State() != StateStopped {
				t.Fatalf("new endpoint is %s", ep.State())
			}
			wantNotStarted(StateStopped)
			for round := range 2 {
				if err := ep.Start(ctx); err != nil {
					t.Fatal(err)
				}
				if ep.State() != StateStarted {
					t.Fatalf("after Start: %s", ep.State())
				}
				if err := ep.Start(ctx); err != nil { // started: START is a no-op
					t.Fatal(err)
				}
				if err := call(); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if err := ep.Stop(ctx); err != nil {
					t.Fatal(err)
				}
				if ep.State() != StateStopped {
					t.Fatalf("after Stop: %s", ep.State())
				}
				wantNotStarted(StateStopped)
			}
			if err := ep.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := ep.Terminate(ctx); err != nil {
				t.Fatal(err)
			}
			if ep.State() != StateTerminated {
				t.Fatalf("after Terminate: %s", ep.State())
			}
			<-ep.Terminated()
			if got := strings.Join(events, ","); got != "start,start,start,stop" {
				t.Fatalf("hooks ran %s", got)
			}
			if err := ep.Start(ctx); !errors.Is(err, ErrNotStarted) {
				t.Fatalf("Start after termination: %v", err)
			}
			if err := ep.RunAsync(func() {}); !errors.Is(err, ErrNotStarted) {
				t.Fatalf("RunAsync after termination: %v", err)
			}
			// A terminated endpoint has left its service.
			if err := call(); !errors.Is(err, ErrEndpointNotFound) {
				t.Fatalf("call after termination: %v", err)
			}
			// The id is free again.
			startEndpoint(t, server, EndpointConfig{ID: "life"}, nil)
		})
	}
}

func TestOnStartFailureTerminates(t *testing.T) {
	server, _ := pair(t, TCP, nil)
	boom := errors.New("boom")
	ep, err := server.NewEndpoint(EndpointConfig{ID: "bad", OnStart: func(context.Context) error { return boom }})
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Start(ctxT(t)); !errors.Is(err, boom) {
		t.Fatalf("Start: %v", err)
	}
	<-ep.Terminated()
	if !errors.Is(ep.Err(), boom) || ep.State() != StateTerminated {
		t.Fatalf("state %s, err %v", ep.State(), ep.Err())
	}
}

// TestMainThread: RunAsync, CallAsync and ScheduleRunAsync run on the main
// goroutine; elsewhere the check fails.
func TestMainThread(t *testing.T) {
	server, _ := pair(t, TCP, nil)
	ctx := ctxT(t)
	ep := startEndpoint(t, server, EndpointConfig{ID: "m"}, nil)
	if err := ep.ValidateRunsInMainThread(); !errors.Is(err, ErrNotMainThread) {
		t.Fatalf("test goroutine: %v", err)
	}
	ran := make(chan error, 2)
	if err := ep.RunAsync(func() { ran <- ep.ValidateRunsInMainThread() }); err != nil {
		t.Fatal(err)
	}
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	ep.ScheduleRunAsync(10*time.Millisecond, func() { ran <- ep.ValidateRunsInMainThread() })
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	// CallAsync from the main goroutine itself does not deadlock.
	v, err := CallAsync(ctx, ep, func() (int, error) {
		inner := CallAsync(ctx, ep, func() (int, error) { return 2, ep.ValidateRunsInMainThread() })
		go func() { _, _ = inner.Get(ctx) }()
		return 1, ep.ValidateRunsInMainThread()
	}).Get(ctx)
	if err != nil || v != 1 {
		t.Fatalf("CallAsync = %d, %v", v, err)
	}
	// A cancelled schedule never runs.
	cancel := ep.ScheduleRunAsync(time.Hour, func() { t.Error("cancelled task ran") })
	if !cancel() {
		t.Fatal("cancel reported the task already queued")
	}
	// Start/Stop/Terminate from the main goroutine would wait for itself.
	if _, err := CallAsync(ctx, ep, func() (int, error) { return 0, ep.Stop(ctx) }).Get(ctx); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Stop from the main goroutine: %v", err)
	}
}

// TestMailboxFull: a bounded mailbox rejects instead of growing.
func TestMailboxFull(t *testing.T) {
	server, client := pair(t, TCP, nil)
	ctx := ctxT(t)
	release := make(chan struct{})
	ep := startEndpoint(t, server, EndpointConfig{ID: "small", MailboxSize: 2}, func(e *Endpoint) {
		_ = Register(e, "noop", func(context.Context, int) (int, error) { return 0, nil })
	})
	entered := make(chan struct{})
	if err := ep.RunAsync(func() { close(entered); <-release }); err != nil {
		t.Fatal(err)
	}
	<-entered
	for i := range 2 {
		if err := ep.RunAsync(func() {}); err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	if err := ep.RunAsync(func() {}); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("third queued task: %v", err)
	}
	g := connect(t, client, server, "small")
	if _, err := Call[int, int](ctx, g, "noop", 0); !errors.Is(err, ErrMailboxFull) {
		t.Fatalf("remote call into a full mailbox: %v", err)
	}
	close(release)
	if _, err := Call[int, int](ctx, g, "noop", 0); err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeMismatch(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, nil)
			ctx := ctxT(t)
			startEndpoint(t, server, EndpointConfig{ID: "jm", Gateway: "JobMasterGateway"}, nil)
			_, err := client.Connect(ctx, server.Addr(), "jm", "TaskExecutorGateway")
			var he *HandshakeError
			if !errors.As(err, &he) || !errors.Is(err, ErrHandshake) {
				t.Fatalf("want a HandshakeError, got %v", err)
			}
			for _, name := range []string{"TaskExecutorGateway", "JobMasterGateway"} {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
			if _, err := client.Connect(ctx, server.Addr(), "nobody", "X"); !errors.Is(err, ErrEndpointNotFound) {
				t.Fatalf("unknown endpoint: %v", err)
			}
			client.version = ProtocolVersion + 1
			_, err = client.Connect(ctx, server.Addr(), "jm", "JobMasterGateway")
			if !errors.As(err, &he) || he.ClientVersion != ProtocolVersion+1 || he.ServerVersion != ProtocolVersion {
				t.Fatalf("version mismatch: %v", err)
			}
			client.version = ProtocolVersion
			g, err := client.Connect(ctx, server.Addr(), "jm", "JobMasterGateway")
			if err != nil {
				t.Fatal(err)
			}
			if g.Address() != server.Addr() || g.Hostname() != "127.0.0.1" {
				t.Fatalf("gateway address %s host %s", g.Address(), g.Hostname())
			}
		})
	}
}

func TestFencing(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, nil)
			ctx := ctxT(t)
			ep := startEndpoint(t, server, EndpointConfig{ID: "jm", Fenced: true}, func(e *Endpoint) {
				_ = Register(e, "who", func(context.Context, int) (string, error) { return string(e.FencingToken()), nil })
			})
			g := connect(t, client, server, "jm")
			if _, err := Call[int, string](ctx, g.WithFencingToken("leader-1"), "who", 0); !errors.Is(err, ErrFenced) {
				t.Fatalf("before a token is set: %v", err)
			}
			if err := ep.SetFencingToken("x"); !errors.Is(err, ErrNotMainThread) {
				t.Fatalf("SetFencingToken off the main goroutine: %v", err)
			}
			// Flink's pattern: set the token without fencing.
			if _, err := CallAsync(ctx, ep, func() (int, error) { return 0, nil }).Get(ctx); !errors.Is(err, ErrFenced) {
				t.Fatalf("fenced CallAsync without a token: %v", err)
			}
			set := func(tok FencingToken) {
				t.Helper()
				if _, err := CallAsyncWithoutFencing(ctx, ep, func() (int, error) { return 0, ep.SetFencingToken(tok) }).Get(ctx); err != nil {
					t.Fatal(err)
				}
			}
			set("leader-1")
			if got, err := Call[int, string](ctx, g.WithFencingToken("leader-1"), "who", 0); err != nil || got != "leader-1" {
				t.Fatalf("current token: %q, %v", got, err)
			}
			set("leader-2")
			_, err := Call[int, string](ctx, g.WithFencingToken("leader-1"), "who", 0)
			var fe *FencedError
			if !errors.As(err, &fe) || fe.Expected != "leader-2" || fe.Got != "leader-1" {
				t.Fatalf("stale token: %v", err)
			}
			if _, err := Call[int, string](ctx, g, "who", 0); !errors.Is(err, ErrFenced) {
				t.Fatalf("no token: %v", err)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, nil)
			startEndpoint(t, server, EndpointConfig{ID: "slow"}, func(e *Endpoint) {
				_ = Register(e, "wait", func(ctx context.Context, _ int) (int, error) {
					<-ctx.Done() // the caller's deadline travels with the call
					return 0, ctx.Err()
				})
				_ = Register(e, "fast", func(context.Context, int) (int, error) { return 7, nil })
			})
			g := connect(t, client, server, "slow")
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := Call[int, int](ctx, g, "wait", 0)
			var te *TimeoutError
			if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) {
				t.Fatalf("want a TimeoutError, got %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("timeout took %v", d)
			}
			// The endpoint and the connection still serve.
			if v, err := Call[int, int](ctxT(t), g, "fast", 0); err != nil || v != 7 {
				t.Fatalf("after a timeout: %d, %v", v, err)
			}
		})
	}
}

// TestConnectionLost: the server's connections drop while a call is in
// flight; the caller gets ErrConnectionLost naming the peer, and the next
// call dials again.
func TestConnectionLost(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, nil)
			entered := make(chan struct{}, 1)
			startEndpoint(t, server, EndpointConfig{ID: "x"}, func(e *Endpoint) {
				_ = Register(e, "hang", func(ctx context.Context, _ int) (int, error) {
					entered <- struct{}{}
					<-ctx.Done()
					return 0, ctx.Err()
				})
				_ = Register(e, "ok", func(context.Context, int) (int, error) { return 1, nil })
			})
			g := connect(t, client, server, "x")
			errc := make(chan error, 1)
			go func() {
				_, err := Call[int, int](ctxT(t), g, "hang", 0)
				errc <- err
			}()
			<-entered
			start := time.Now()
			server.dropAccepted()
			err := <-errc
			var cl *ConnectionLostError
			if !errors.As(err, &cl) || !errors.Is(err, ErrConnectionLost) || cl.Peer != server.Addr() {
				t.Fatalf("want ConnectionLostError naming %s, got %v", server.Addr(), err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("loss detected after %v", d)
			}
			if v, err := Call[int, int](ctxT(t), g, "ok", 0); err != nil || v != 1 {
				t.Fatalf("after reconnecting: %d, %v", v, err)
			}
		})
	}
}

func TestRemoteError(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, nil)
			startEndpoint(t, server, EndpointConfig{ID: "e"}, func(e *Endpoint) {
				_ = Register(e, "fail", func(_ context.Context, s string) (int, error) { return 0, fmt.Errorf("no such word %q", s) })
				_ = Register(e, "panic", func(context.Context, int) (int, error) { panic("kaboom") })
			})
			g := connect(t, client, server, "e")
			_, err := Call[string, int](ctxT(t), g, "fail", "zebra")
			var re *RemoteError
			if !errors.As(err, &re) || re.Message != `no such word "zebra"` || re.Method != "fail" {
				t.Fatalf("remote error: %v", err)
			}
			if _, err := Call[int, int](ctxT(t), g, "panic", 0); !errors.Is(err, ErrRemote) || !strings.Contains(err.Error(), "kaboom") {
				t.Fatalf("panicking handler: %v", err)
			}
		})
	}
}

func TestCallAsyncTimeout(t *testing.T) {
	server, _ := pair(t, TCP, nil)
	ep := startEndpoint(t, server, EndpointConfig{ID: "busy"}, nil)
	release := make(chan struct{})
	defer close(release)
	if err := ep.RunAsync(func() { <-release }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	_, err := CallAsync(ctx, ep, func() (int, error) { ran = true; return 1, nil }).Get(context.Background())
	var te *TimeoutError
	if !errors.As(err, &te) || te.Timeout <= 0 || te.Timeout > 50*time.Millisecond {
		t.Fatalf("want a TimeoutError of at most 50ms, got %v", err)
	}
	release <- struct{}{}
	// The expired call is skipped, not run late.
	if _, err := CallAsync(ctxT(t), ep, func() (bool, error) { return ran, nil }).Get(ctxT(t)); err != nil || ran {
		t.Fatalf("expired call ran: %v %v", ran, err)
	}
}

func TestConfigValidation(t *testing.T) {
	base := testConfig(t, TCP)
	for _, c := range []struct {
		field string
		mod   func(*Config)
	}{
		{"Transport", func(c *Config) { c.Transport = "udp" }},
		{"CallTimeout", func(c *Config) { c.CallTimeout = -1 }},
		{"MaxMessageSize", func(c *Config) { c.MaxMessageSize = -1 }},
		{"MaxMessageSize", func(c *Config) { c.MaxMessageSize = 10 }},
		{"MaxInFlight", func(c *Config) { c.MaxInFlight = -1 }},
		{"MailboxSize", func(c *Config) { c.MailboxSize = -5 }},
	} {
		cfg := base
		c.mod(&cfg)
		_, err := NewService(cfg)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", c.field, err)
		}
	}
	noVerify := base
	noVerify.TLS.PinnedSHA256 = nil
	if _, err := NewService(noVerify); !errors.Is(err, tlsconf.ErrNoVerification) {
		t.Errorf("no verification: %v", err)
	}
	noCert := base
	noCert.TLS.Certificate = nil
	if _, err := NewService(noCert); !errors.Is(err, tlsconf.ErrNoCertificate) {
		t.Errorf("no certificate: %v", err)
	}
}

// TestUntrustedPeer: a peer whose certificate is not pinned is refused
// by the TLS handshake, on both transports.
func TestUntrustedPeer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, _ := pair(t, tr, nil)
			startEndpoint(t, server, EndpointConfig{ID: "e"}, nil)
			cert, pin, err := tlsconf.SelfSigned()
			if err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t, tr)
			cfg.TLS.Certificate, cfg.TLS.PinnedSHA256 = &cert, [][32]byte{pin, testCert.pin}
			stranger, err := NewService(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer stranger.Close()
			if _, err := stranger.Connect(ctxT(t), server.Addr(), "e", "e"); !errors.Is(err, ErrConnectionLost) {
				t.Fatalf("untrusted client connected: %v", err)
			}
		})
	}
}

// TestBounds: MaxConnections refuses the connection beyond it, and
// MaxInFlight holds back the calls beyond it on one connection.
func TestBounds(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, func(c *Config) { c.MaxConnections, c.MaxInFlight = 1, 2 })
			release := make(chan struct{})
			entered := make(chan struct{}, 4)
			startEndpoint(t, server, EndpointConfig{ID: "e"}, func(e *Endpoint) {
				_ = Register(e, "block", func(ctx context.Context, _ int) (int, error) {
					entered <- struct{}{}
					select {
					case <-release:
					case <-ctx.Done():
					}
					return 0, nil
				})
				_ = Register(e, "ok", func(context.Context, int) (int, error) { return 1, nil })
			})
			g := connect(t, client, server, "e")
			ctx := ctxT(t)
			errc := make(chan error, 2)
			for range 2 {
				go func() { _, err := Call[int, int](ctx, g, "block", 0); errc <- err }()
			}
			<-entered // one runs on the main goroutine, one waits in the mailbox
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			if _, err := Call[int, int](short, g, "ok", 0); !errors.Is(err, ErrTimeout) {
				t.Fatalf("third call with MaxInFlight 2: %v, want a timeout", err)
			}
			close(release)
			for range 2 {
				if err := <-errc; err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Call[int, int](ctx, g, "ok", 0); err != nil {
				t.Fatal(err)
			}
			// A second client is one connection too many.
			other, err := NewService(testConfig(t, tr))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, err := other.Connect(ctx, server.Addr(), "e", "e"); !errors.Is(err, ErrConnectionLost) {
				t.Fatalf("connection beyond MaxConnections: %v", err)
			}
		})
	}
}

// TestCancel: cancelling a call's context returns at once with
// context.Canceled (not a timeout); the connection keeps serving.
func TestCancel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			server, client := pair(t, tr, func(c *Config) { c.CallTimeout = 500 * time.Millisecond })
			entered := make(chan struct{}, 1)
			startEndpoint(t, server, EndpointConfig{ID: "e"}, func(e *Endpoint) {
				_ = Register(e, "hang", func(ctx context.Context, _ int) (int, error) {
					entered <- struct{}{}
					<-ctx.Done()
					return 0, ctx.Err()
				})
				_ = Register(e, "ok", func(context.Context, int) (int, error) { return 1, nil })
			})
			g := connect(t, client, server, "e")
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { _, err := Call[int, int](ctx, g, "hang", 0); errc <- err }()
			<-entered
			start := time.Now()
			cancel()
			err := <-errc
			if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
				t.Fatalf("cancelled call: %v", err)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Fatalf("cancellation took %v", d)
			}
			// The handler's context ends at the call's deadline; then
			// the endpoint serves again on the same connection.
			if v, err := Call[int, int](ctxT(t), g, "ok", 0); err != nil || v != 1 {
				t.Fatalf("after a cancelled call: %d, %v", v, err)
			}
		})
	}
}
