package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// State is an endpoint's lifecycle state, after Flink's AkkaRpcActor.
type State uint8

const (
	// StateStopped: created, or stopped by Stop; calls are rejected with
	// ErrNotStarted. Start moves it to StateStarted.
	StateStopped State = iota
	// StateStarted: calls and scheduled work run on the main goroutine.
	StateStarted
	// StateTerminating: OnStop is running; calls are rejected.
	StateTerminating
	// StateTerminated: final; the main goroutine has exited.
	StateTerminated
)

func (s State) String() string {
	switch s {
	case StateStopped:
		return "stopped"
	case StateStarted:
		return "started"
	case StateTerminating:
		return "terminating"
	case StateTerminated:
		return "terminated"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// FencingToken identifies the current incarnation of a fenced endpoint
// (Flink's JobMasterId / ResourceManagerId: a new leader, a new token).
type FencingToken string

// EndpointConfig configures an endpoint. Zero values mean the documented
// defaults.
type EndpointConfig struct {
	// ID names the endpoint within its service (required).
	ID string
	// Gateway is the gateway type the endpoint serves, checked by the
	// remote handshake against the type a client expects (default: ID).
	Gateway string
	// Fenced makes every remote call and every RunAsync/CallAsync carry a
	// fencing token that must equal the endpoint's current token (see
	// SetFencingToken); CallAsyncWithoutFencing is exempt.
	Fenced bool
	// MailboxSize bounds the queued calls and tasks (default
	// Config.MailboxSize); a full mailbox rejects with ErrMailboxFull.
	MailboxSize int
	// OnStart runs on the main goroutine on START; an error terminates
	// the endpoint. OnStop runs on the main goroutine on TERMINATE,
	// bounded by Config.ShutdownTimeout. Both may be nil.
	OnStart, OnStop func(ctx context.Context) error
}

// task is one mailbox item: run on the main goroutine, or reject if the
// endpoint cannot run it.
type task struct {
	run    func()
	reject func(error) // may be nil
}

type control uint8

const (
	ctlStart control = iota
	ctlStop
	ctlTerminate
)

type controlMsg struct {
	msg   control
	reply chan error
}

// Endpoint is an RPC endpoint (Flink's RpcEndpoint with its actor): an id,
// a lifecycle, registered methods, and a main goroutine that runs every
// call, RunAsync, CallAsync and ScheduleRunAsync of the endpoint one at a
// time, so endpoint state needs no locks. Create one with
// Service.NewEndpoint, register methods with Register, then Start.
type Endpoint struct {
	svc     *Service
	id      string
	gateway string
	fenced  bool
	onStart func(context.Context) error
	onStop  func(context.Context) error

	control chan controlMsg
	mailbox chan task
	state   atomic.Uint32 // published State, for rejecting at once
	mainGID atomic.Uint64

	// token is the fencing token: written on the main goroutine, read
	// anywhere (RunAsync captures it at submission).
	token atomic.Pointer[FencingToken]

	methodsMu sync.RWMutex
	methods   map[string]*method

	mu     sync.Mutex // guards closed (enqueue vs. final drain) and timers
	closed bool
	timers map[*time.Timer]struct{}

	terminated chan struct{}
	termErr    error // set before terminated is closed
}

func newEndpoint(svc *Service, cfg EndpointConfig, mailbox int) *Endpoint {
	if cfg.Gateway == "" {
		cfg.Gateway = cfg.ID
	}
	if cfg.MailboxSize > 0 {
		mailbox = cfg.MailboxSize
	}
	e := &Endpoint{
		svc: svc, id: cfg.ID, gateway: cfg.Gateway, fenced: cfg.Fenced,
		onStart: cfg.OnStart, onStop: cfg.OnStop,
		control:    make(chan controlMsg),
		mailbox:    make(chan task, mailbox),
		methods:    map[string]*method{},
		timers:     map[*time.Timer]struct{}{},
		terminated: make(chan struct{}),
	}
	var none FencingToken
	e.token.Store(&none)
	return e
}

// ID returns the endpoint's id.
func (e *Endpoint) ID() string { return e.id }

// Gateway returns the gateway type the endpoint serves.
func (e *Endpoint) Gateway() string { return e.gateway }

// State returns the endpoint's current state.
func (e *Endpoint) State() State { return State(e.state.Load()) }

// Terminated is closed when the endpoint has terminated; Err then says
// why (nil after a clean Terminate).
func (e *Endpoint) Terminated() <-chan struct{} { return e.terminated }

// Err returns the termination result once Terminated is closed (an
// OnStart or OnStop error), nil before.
func (e *Endpoint) Err() error {
	select {
	case <-e.terminated:
		return e.termErr
	default:
		return nil
	}
}

// Start sends START: a stopped endpoint runs OnStart on its main
// goroutine and becomes started. Starting a started endpoint does
// nothing. It returns OnStart's error (the endpoint then terminates).
func (e *Endpoint) Start(ctx context.Context) error { return e.sendControl(ctx, ctlStart) }

// Stop sends STOP: a started endpoint becomes stopped and rejects calls
// with ErrNotStarted until it is started again (OnStart runs again).
func (e *Endpoint) Stop(ctx context.Context) error { return e.sendControl(ctx, ctlStop) }

// Terminate sends TERMINATE: the endpoint runs OnStop on its main
// goroutine, rejects what is left in its mailbox, leaves its service and
// terminates. It returns OnStop's error. Terminating a terminated endpoint
// returns its termination result.
func (e *Endpoint) Terminate(ctx context.Context) error {
	if err := e.sendControl(ctx, ctlTerminate); err != nil && !errors.Is(err, ErrNotStarted) {
		return err
	}
	select {
	case <-e.terminated:
		return e.termErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Endpoint) sendControl(ctx context.Context, c control) error {
	if e.ValidateRunsInMainThread() == nil {
		// The main goroutine handles control messages: waiting for it
		// here would wait forever.
		return fmt.Errorf("%w: %s's Start/Stop/Terminate would wait for itself; call it from another goroutine", ErrInvalidConfig, e.id)
	}
	m := controlMsg{msg: c, reply: make(chan error, 1)}
	select {
	case e.control <- m:
	case <-e.terminated:
		return e.stateErr("")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-m.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Endpoint) stateErr(method string) error {
	return &EndpointError{Endpoint: e.id, Method: method, State: e.State(), Err: ErrNotStarted}
}

func (e *Endpoint) setState(s State) { e.state.Store(uint32(s)) }

// run is the main goroutine: control messages and mailbox tasks, one at
// a time, until terminated.
func (e *Endpoint) run() {
	e.mainGID.Store(goroutineID())
	for {
		select {
		case c := <-e.control:
			err := e.handleControl(c.msg)
			c.reply <- err
			if e.State() == StateTerminated {
				e.finish(err)
				return
			}
		case t := <-e.mailbox:
			if e.State() == StateStarted {
				t.run()
			} else if t.reject != nil {
				t.reject(e.stateErr(""))
			}
		}
	}
}

func (e *Endpoint) handleControl(c control) error {
	switch s := e.State(); c {
	case ctlStart:
		if s != StateStopped {
			return nil
		}
		if e.onStart != nil {
			if err := e.callHook(e.onStart, 0); err != nil {
				e.setState(StateTerminated)
				return fmt.Errorf("rpc: endpoint %s: OnStart: %w", e.id, err)
			}
		}
		e.setState(StateStarted)
	case ctlStop:
		if s == StateStarted {
			e.setState(StateStopped)
		}
	case ctlTerminate:
		e.setState(StateTerminating)
		var err error
		if e.onStop != nil {
			if err = e.callHook(e.onStop, e.svc.cfg.ShutdownTimeout); err != nil {
				err = fmt.Errorf("rpc: endpoint %s: OnStop: %w", e.id, err)
			}
		}
		e.setState(StateTerminated)
		return err
	}
	return nil
}

// callHook runs a lifecycle hook, turning a panic into an error: a hook
// must not take the service down.
func (e *Endpoint) callHook(h func(context.Context) error, timeout time.Duration) (err error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return h(ctx)
}

// finish runs on the main goroutine after the last control message:
// nothing is queued any more, and everything queued is rejected.
func (e *Endpoint) finish(err error) {
	e.mu.Lock()
	e.closed = true
	for t := range e.timers {
		t.Stop()
	}
	clear(e.timers)
	e.mu.Unlock()
	rejectErr := e.stateErr("")
	for {
		select {
		case t := <-e.mailbox:
			if t.reject != nil {
				t.reject(rejectErr)
			}
			continue
		default:
		}
		break
	}
	e.termErr = err
	e.svc.removeEndpoint(e)
	close(e.terminated)
}

// enqueue puts t in the mailbox, or fails at once: not started (unless
// anyState), terminated, or full.
func (e *Endpoint) enqueue(t task, method string, anyState bool) error {
	if s := e.State(); s != StateStarted && !(anyState && s == StateStopped) {
		return e.stateErr(method)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return e.stateErr(method)
	}
	select {
	case e.mailbox <- t:
		return nil
	default:
		return &EndpointError{Endpoint: e.id, Method: method, Err: ErrMailboxFull}
	}
}

// fencingCheck returns the FencedError for a call carrying got, or nil.
// Main goroutine only.
func (e *Endpoint) fencingCheck(method string, got FencingToken) error {
	if !e.fenced {
		return nil
	}
	if want := *e.token.Load(); want == "" || want != got {
		return &FencedError{Endpoint: e.id, Method: method, Expected: want, Got: got}
	}
	return nil
}

// SetFencingToken sets the fencing token of a fenced endpoint. It must be
// called on the main goroutine (from a handler, OnStart, RunAsync or
// CallAsyncWithoutFencing), as in Flink; elsewhere it returns
// ErrNotMainThread.
func (e *Endpoint) SetFencingToken(t FencingToken) error {
	if err := e.ValidateRunsInMainThread(); err != nil {
		return err
	}
	e.token.Store(&t)
	return nil
}

// FencingToken returns the endpoint's current fencing token.
func (e *Endpoint) FencingToken() FencingToken { return *e.token.Load() }

// ValidateRunsInMainThread returns nil on the endpoint's main goroutine
// and an error wrapping ErrNotMainThread elsewhere. It reads the
// goroutine's id from its stack (about a microsecond): a check for tests
// and assertions, as in Flink, not for hot paths.
func (e *Endpoint) ValidateRunsInMainThread() error {
	if goroutineID() != e.mainGID.Load() {
		return fmt.Errorf("%w of %s", ErrNotMainThread, e.id)
	}
	return nil
}

// goroutineID parses "goroutine N [" from the current stack.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// RunAsync runs fn on the main goroutine. It fails at once if the
// endpoint is not started or its mailbox is full. On a fenced endpoint fn
// is dropped if the fencing token changes before it runs.
func (e *Endpoint) RunAsync(fn func()) error {
	tok := e.FencingToken()
	return e.enqueue(task{run: func() {
		if e.fencingCheck("RunAsync", tok) == nil {
			fn()
		}
	}}, "RunAsync", false)
}

// ScheduleRunAsync runs fn on the main goroutine after delay. The
// returned cancel stops it if it has not been queued yet (it reports
// whether it did). Scheduled work is dropped when the endpoint terminates.
func (e *Endpoint) ScheduleRunAsync(delay time.Duration, fn func()) (cancel func() bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return func() bool { return false }
	}
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		e.mu.Lock()
		delete(e.timers, t)
		e.mu.Unlock()
		_ = e.RunAsync(fn) // not started or full: dropped, as in Flink
	})
	e.timers[t] = struct{}{}
	return func() bool {
		e.mu.Lock()
		delete(e.timers, t)
		e.mu.Unlock()
		return t.Stop()
	}
}

// Future is the pending result of CallAsync.
type Future[T any] struct {
	done atomic.Bool
	ch   chan struct{}
	val  T
	err  error
}

func newFuture[T any]() *Future[T] { return &Future[T]{ch: make(chan struct{})} }

func (f *Future[T]) complete(v T, err error) {
	if f.done.CompareAndSwap(false, true) {
		f.val, f.err = v, err
		close(f.ch)
	}
}

// Done is closed when the result is available.
func (f *Future[T]) Done() <-chan struct{} { return f.ch }

// Get waits for the result, or for ctx.
func (f *Future[T]) Get(ctx context.Context) (T, error) {
	select {
	case <-f.ch:
		return f.val, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// CallAsync runs fn on ep's main goroutine and returns its result as a
// Future. ctx bounds the call: if it ends first, the future fails with a
// TimeoutError (deadline) or ctx's error, and fn is skipped if it has not
// started. On a fenced endpoint fn fails with a FencedError if the
// fencing token changes before it runs. It never blocks, so it may be
// used from the main goroutine itself.
func CallAsync[T any](ctx context.Context, ep *Endpoint, fn func() (T, error)) *Future[T] {
	return callAsync(ctx, ep, fn, true)
}

// CallAsyncWithoutFencing is CallAsync without the fencing check: it runs
// even before a fenced endpoint has a token (Flink uses it to start a
// JobMaster and set its token).
func CallAsyncWithoutFencing[T any](ctx context.Context, ep *Endpoint, fn func() (T, error)) *Future[T] {
	return callAsync(ctx, ep, fn, false)
}

func callAsync[T any](ctx context.Context, ep *Endpoint, fn func() (T, error), fenced bool) *Future[T] {
	f := newFuture[T]()
	var zero T
	var timeout time.Duration // for the error: the deadline as it was at submission
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := ctx.Err(); err != nil {
		f.complete(zero, localCtxErr(ep, ctx, timeout))
		return f
	}
	stop := context.AfterFunc(ctx, func() { f.complete(zero, localCtxErr(ep, ctx, timeout)) })
	tok := ep.FencingToken()
	err := ep.enqueue(task{
		run: func() {
			defer stop()
			if ctx.Err() != nil || f.done.Load() {
				return
			}
			if fenced {
				if err := ep.fencingCheck("CallAsync", tok); err != nil {
					f.complete(zero, err)
					return
				}
			}
			v, err := fn()
			f.complete(v, err)
		},
		reject: func(err error) { stop(); f.complete(zero, err) },
	}, "CallAsync", false)
	if err != nil {
		stop()
		f.complete(zero, err)
	}
	return f
}

func localCtxErr(ep *Endpoint, ctx context.Context, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &TimeoutError{Peer: "local", Endpoint: ep.id, Method: "CallAsync", Timeout: timeout}
	}
	return fmt.Errorf("rpc: CallAsync on %s: %w", ep.id, ctx.Err())
}
