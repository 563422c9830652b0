//go:build !linux

package linkemu

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

type sysState struct{}

func sysAvailable() error { return &EnvError{Kind: ErrUnsupported} }

func sysSetup(context.Context, *Link) error { return &EnvError{Kind: ErrUnsupported} }

func sysTeardown(*Link) error { return nil }

func sysTUN(*Link) (io.Reader, io.Writer, io.Reader, io.Writer) { return nil, nil, nil, nil }

func sysRunIn(*Link, Side, func() error) error { return &EnvError{Kind: ErrUnsupported} }

// RemoveStale is a no-op outside Linux.
func RemoveStale(string) ([]string, error) { return nil, nil }

type sleeper struct {
	done chan struct{}
	once sync.Once
}

func newSleeper() (*sleeper, error) { return &sleeper{done: make(chan struct{})}, nil }

func (s *sleeper) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.done:
		return os.ErrClosed
	}
}

func (s *sleeper) close() { s.once.Do(func() { close(s.done) }) }

func setSocketBuffers(c *net.UDPConn, n int) {
	_ = c.SetReadBuffer(n)
	_ = c.SetWriteBuffer(n)
}
