package quictransport

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
	_ "github.com/quic-go/quic-go/qlog" // registers the QUIC event schema of the traces
	"github.com/quic-go/quic-go/qlogwriter"
)

// checkWritableDir creates dir if needed and checks that a file can be
// written in it.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".qlog-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// qlogTracer returns the quic.Config.Tracer that writes one qlog file per
// connection into dir.
func (t *Transport) qlogTracer(dir string) func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	return func(_ context.Context, isClient bool, id quic.ConnectionID) qlogwriter.Trace {
		role := "server"
		if isClient {
			role = "client"
		}
		path := filepath.Join(dir, fmt.Sprintf("%s_%s.sqlog", id, role))
		f, err := os.Create(path)
		if err != nil {
			t.log.Warn().Err(err).Str("path", path).Msg("cannot write qlog trace")
			return nil
		}
		trace := qlogwriter.NewConnectionFileSeq(&bufferedFile{Writer: bufio.NewWriter(f), f: f}, isClient, id)
		go trace.Run() // ends when quic-go closes the trace with its connection
		return trace
	}
}

// bufferedFile flushes its buffer when closed.
type bufferedFile struct {
	*bufio.Writer
	f *os.File
}

func (b *bufferedFile) Close() error {
	err := b.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}
