//go:build !linux

package linkemu

import "context"

// LockHost is a no-op where links cannot be created.
func LockHost(ctx context.Context) (unlock func(), err error) { return func() {}, nil }
