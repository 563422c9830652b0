package spill

import (
	"os"
	"path/filepath"

	"github.com/rs/zerolog"
)

// DefaultDirName is the directory under os.TempDir() used when
// Config.Dir is empty.
const DefaultDirName = "qexchange-spill"

// DefaultWriteBufferSize is the write buffer of one partition writer.
const DefaultWriteBufferSize = 1 << 20

// MinWriteBufferSize is the smallest write buffer accepted.
const MinWriteBufferSize = 4 << 10

// Config configures a Manager. Zero values mean the documented defaults.
type Config struct {
	// Dir is the spill directory shared by the processes of a host
	// (default: os.TempDir()/qexchange-spill). It is created if missing.
	// Each Manager works in its own subdirectory of it. It is created
	// with mode 0700, so on a host shared by several users give each user
	// its own Dir.
	Dir string
	// WriteBufferSize bounds the memory of one partition writer: buffers
	// are gathered into it and written in one sequential write when it is
	// full (default 1 MiB, minimum 4 KiB).
	WriteBufferSize int
	// Sync makes Writer.Finish fsync the data file, so a finished
	// partition survives a crash of the host, not only of the process
	// (default off: a restarted process removes the files anyway).
	Sync bool
	// Logger receives the manager's logs (default: disabled).
	Logger zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.Dir == "" {
		c.Dir = filepath.Join(os.TempDir(), DefaultDirName)
	}
	if c.WriteBufferSize == 0 {
		c.WriteBufferSize = DefaultWriteBufferSize
	}
	return c
}

func (c Config) validate() error {
	if c.WriteBufferSize < MinWriteBufferSize || c.WriteBufferSize > 1<<30 {
		return &ConfigError{Field: "WriteBufferSize", Value: c.WriteBufferSize, Reason: "must be in 4 KiB..1 GiB"}
	}
	return nil
}
