package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress draws one status line on stderr while a run goes on, only when
// stderr is a terminal.
type progress struct {
	w    io.Writer
	stop chan struct{}
	done sync.WaitGroup
}

// startProgress redraws line() every 250 ms until stop is called; a no-op
// when w is not a terminal.
func startProgress(w io.Writer, line func() string) *progress {
	p := &progress{w: w, stop: make(chan struct{})}
	f, ok := w.(*os.File)
	if !ok || !isTerminal(f.Fd()) {
		return p
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				fmt.Fprintf(w, "\r\x1b[K%s", line())
			case <-p.stop:
				fmt.Fprint(w, "\r\x1b[K")
				return
			}
		}
	}()
	return p
}

// Stop clears the line.
func (p *progress) Stop() {
	close(p.stop)
	p.done.Wait()
}

// si formats a count with a k/M/G suffix.
func si(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}
