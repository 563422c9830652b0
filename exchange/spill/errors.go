package spill

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors. Every error of the package wraps one of them, so
// callers branch with errors.Is and read details with errors.As.
var (
	// ErrDiskFull: the spill directory's file system has no space (or
	// quota) left.
	ErrDiskFull = errors.New("spill: disk full")
	// ErrNotWritable: the spill directory cannot be written (permissions,
	// read-only file system).
	ErrNotWritable = errors.New("spill: directory not writable")
	// ErrIO: another I/O error on a spill file or directory.
	ErrIO = errors.New("spill: I/O error")
	// ErrCorrupt: a spilled buffer does not match its index or checksum.
	ErrCorrupt = errors.New("spill: corrupt spill file")
	// ErrReleased: the partition was released (its files are gone).
	ErrReleased = errors.New("spill: partition released")
	// ErrClosed: the manager, writer or reader is closed or finished.
	ErrClosed = errors.New("spill: closed")
	// ErrInvalidConfig: a configuration field is out of range.
	ErrInvalidConfig = errors.New("spill: invalid configuration")
	// ErrInvalidArgument: a subpartition, data type or destination buffer
	// that the call cannot accept.
	ErrInvalidArgument = errors.New("spill: invalid argument")
	// ErrTooLarge: a buffer above MaxBufferSize, or a file above
	// MaxFileSize.
	ErrTooLarge = errors.New("spill: too large")
)

// IOError is a failed file-system operation. It names the spill directory
// (the one an operator configured) as well as the file, so a full or
// read-only disk is found at once.
type IOError struct {
	Op   string // "create directory", "create file", "write", "sync", "read"
	Dir  string // the configured spill directory
	Path string // the file or subdirectory concerned
	Err  error  // the operating system's error
}

func (e *IOError) Error() string {
	return fmt.Sprintf("spill: %s %s (spill directory %s): %v", e.Op, e.Path, e.Dir, e.Err)
}

// Unwrap returns the kind (ErrDiskFull, ErrNotWritable or ErrIO) and the
// operating system's error.
func (e *IOError) Unwrap() []error { return []error{e.kind(), e.Err} }

func (e *IOError) kind() error {
	switch {
	case errors.Is(e.Err, syscall.ENOSPC), errors.Is(e.Err, syscall.EDQUOT):
		return ErrDiskFull
	case errors.Is(e.Err, syscall.EACCES), errors.Is(e.Err, syscall.EPERM), errors.Is(e.Err, syscall.EROFS), errors.Is(e.Err, syscall.ENOTDIR):
		return ErrNotWritable
	default:
		return ErrIO
	}
}

// ConfigError names the configuration field that is out of range.
type ConfigError struct {
	Field  string
	Value  any
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("spill: invalid %s = %v: %s", e.Field, e.Value, e.Reason)
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// CorruptError is a spilled buffer that does not read back as written.
type CorruptError struct {
	Path   string
	Offset int64 // the buffer's header in the file
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spill: corrupt buffer at offset %d of %s: %s", e.Offset, e.Path, e.Reason)
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }
