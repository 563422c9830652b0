//go:build linux

package linkemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockHost takes a host-wide lock (a file lock, so it spans processes)
// that timing-sensitive users of emulated links hold while they measure:
// the fidelity probe and the benchmarks compare delays against the
// configured link, and two of them side by side on a small machine starve
// each other's forwarders and senders. It waits until the lock is free or
// ctx is done; call the returned function to release it.
func LockHost(ctx context.Context) (unlock func(), err error) {
	path := filepath.Join(os.TempDir(), "qexchange-linkemu.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("linkemu: host lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("linkemu: host lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("linkemu: waiting for another link benchmark on this host (%s): %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
