package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// defaultProgressEvery is how often a run reports progress on a
// non-terminal stderr: runs shorter than that print nothing extra.
const defaultProgressEvery = 10 * time.Second

// progress reports a run's progress on stderr: on a terminal it redraws
// one status line every 250 ms (and clears it at the end); otherwise
// (files, pipes, CI logs) it writes one line every o.progressEvery.
type progress struct {
	stop chan struct{}
	done sync.WaitGroup
}

// startProgress reports line() until Stop. prefix starts the
// non-terminal lines (e.g. "exchange bench: ").
func startProgress(o *options, w io.Writer, prefix string, line func() string) *progress {
	p := &progress{stop: make(chan struct{})}
	every, tty := o.progressEvery, o.stderrTTY
	if tty {
		every = 250 * time.Millisecond
	}
	if every <= 0 {
		return p
	}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if tty {
					fmt.Fprintf(w, "\r\x1b[K%s", line())
				} else {
					fmt.Fprintf(w, "%s%s\n", prefix, line())
				}
			case <-p.stop:
				if tty {
					fmt.Fprint(w, "\r\x1b[K")
				}
				return
			}
		}
	}()
	return p
}

// Stop ends the reports (and clears the terminal line).
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
