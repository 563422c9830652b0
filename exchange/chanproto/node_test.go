package chanproto_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/chanproto"
)

type closeCounter struct{ n int }

func (c *closeCounter) Close() error { c.n++; return nil }

func TestNodeLifecycle(t *testing.T) {
	n := chanproto.NewNode[int]("test")
	if err := n.CanListen(); err != nil {
		t.Fatalf("CanListen before listening: %v", err)
	}
	ln := &closeCounter{}
	if err := n.Listening(ln, "a:1", nil); err != nil || n.Addr() != "a:1" {
		t.Fatalf("Listening: %v, addr %q", err, n.Addr())
	}
	second := &closeCounter{}
	if err := n.Listening(second, "a:2", nil); err == nil || second.n != 1 || n.Addr() != "a:1" {
		t.Fatalf("second Listening: %v, its listener closed %d times, addr %q; want an error, it closed once, a:1 kept", err, second.n, n.Addr())
	}

	release := make(chan struct{})
	for c := range 3 {
		if !n.Serve(c, func() { <-release }) {
			t.Fatalf("Serve(%d) refused before Close", c)
		}
	}
	finished := make(chan struct{})
	if !n.Serve(3, func() { close(finished) }) {
		t.Fatal("Serve(3) refused before Close")
	}
	<-finished
	served, first := n.Close()
	slices.Sort(served)
	// 3 may still be leaving the set when Close takes its snapshot.
	if !first || (!slices.Equal(served, []int{0, 1, 2}) && !slices.Equal(served, []int{0, 1, 2, 3})) {
		t.Fatalf("Close: %v, %v; want the connections being served, first", served, first)
	}
	if ln.n != 1 {
		t.Fatalf("listener closed %d times by Close, want 1", ln.n)
	}
	if _, again := n.Close(); again {
		t.Fatal("a second Close reported itself as the first")
	}
	if n.Serve(9, func() { t.Error("served after Close") }) || n.Track(9) || n.GoUnlessClosed(func() { t.Error("ran after Close") }) {
		t.Fatal("Serve, Track or GoUnlessClosed accepted work after Close")
	}
	late := &closeCounter{}
	if err := n.Listening(late, "a:3", nil); !errors.Is(err, exchange.ErrClosed) || late.n != 1 {
		t.Fatalf("Listening after Close: %v, listener closed %d times; want ErrClosed, closed once", err, late.n)
	}
	close(release)
	n.Wait()
	if got := n.Served(); len(got) != 0 {
		t.Fatalf("served after every serve returned: %v", got)
	}
}
