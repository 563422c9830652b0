package spill

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// processDirPrefix starts the name of every per-process subdirectory; only
// such directories are ever removed by another process.
const processDirPrefix = "proc-"

// ownerAttempts bounds the retries when a fresh subdirectory is taken by
// another process's stale-directory sweep before this one locks it.
const ownerAttempts = 5

// Manager owns one per-process subdirectory of the spill directory
// (Flink's FileChannelManager) and the partition files in it. It is safe
// for concurrent use.
type Manager struct {
	cfg  Config
	log  zerolog.Logger
	dir  string   // this process's subdirectory
	lock *os.File // dir, opened and flock'ed for the Manager's lifetime

	mu     sync.Mutex
	closed bool
	seq    uint64
	open   map[closer]struct{} // writers and partitions not yet released
	stale  int

	written atomic.Int64 // bytes written by all writers
}

// closer is a writer or partition the manager removes on Close.
type closer interface{ discard() error }

// NewManager takes ownership of a new subdirectory of cfg.Dir, after
// removing the subdirectories of processes that died without cleaning up
// (see the package documentation). A directory that cannot be created or
// written fails here with an *IOError naming it.
func NewManager(cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, &IOError{Op: "create directory", Dir: cfg.Dir, Path: cfg.Dir, Err: err}
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, open: make(map[closer]struct{})}
	m.stale = removeStale(cfg.Dir, m.log)
	if err := m.takeDir(); err != nil {
		return nil, err
	}
	m.log.Debug().Str("dir", m.dir).Int("stale_removed", m.stale).Msg("spill: manager started")
	return m, nil
}

// takeDir creates and locks this process's subdirectory. Between mkdir and
// flock another process's sweep may lock and remove the new directory;
// after locking, the directory must still be the one at its path, or we
// start again with a new one.
func (m *Manager) takeDir() error {
	var lastErr error
	for range ownerAttempts {
		dir, err := os.MkdirTemp(m.cfg.Dir, fmt.Sprintf("%s%d-", processDirPrefix, os.Getpid()))
		if err != nil {
			return &IOError{Op: "create directory", Dir: m.cfg.Dir, Path: m.cfg.Dir, Err: err}
		}
		f, err := os.Open(dir)
		if err != nil {
			lastErr = err
			continue
		}
		if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			lastErr = err
			continue // a sweep holds it and will remove it
		}
		if !stillAt(f, dir) {
			f.Close() // removed by a sweep
			lastErr = errors.New("directory removed while locking it")
			continue
		}
		m.dir, m.lock = dir, f
		return nil
	}
	return &IOError{Op: "lock directory", Dir: m.cfg.Dir, Path: m.cfg.Dir, Err: lastErr}
}

// removeStale removes every per-process subdirectory of base whose lock is
// free: its owner is dead, since a live owner holds the lock until Close.
// It returns how many it removed. Failures are logged, never fatal: a
// leftover directory costs disk, not correctness.
func removeStale(base string, log zerolog.Logger) int {
	entries, err := os.ReadDir(base)
	if err != nil {
		log.Warn().Err(err).Str("dir", base).Msg("spill: cannot list the spill directory for stale files")
		return 0
	}
	removed := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), processDirPrefix) {
			continue
		}
		path := filepath.Join(base, e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue // removed meanwhile by another sweep
		}
		if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil || !stillAt(f, path) {
			f.Close() // its owner is alive, or another sweep has it or removed it
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			log.Warn().Err(err).Str("dir", path).Msg("spill: cannot remove a dead process's spill files")
		} else {
			removed++
			log.Info().Str("dir", path).Msg("spill: removed a dead process's spill files")
		}
		f.Close() // releases the lock
	}
	return removed
}

// stillAt reports whether the open directory f is still the one at path.
func stillAt(f *os.File, path string) bool {
	fi, err1 := f.Stat()
	pi, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(fi, pi)
}

func flock(f *os.File, how int) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lockErr error
	if err := raw.Control(func(fd uintptr) {
		for {
			if lockErr = unix.Flock(int(fd), how); lockErr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return lockErr
}

// BytesWritten is the number of bytes all writers of the manager have
// written to disk so far (headers included).
func (m *Manager) BytesWritten() int64 { return m.written.Load() }

// Dir is this process's subdirectory, where its partition files live.
func (m *Manager) Dir() string { return m.dir }

// StaleRemoved is how many dead processes' subdirectories NewManager
// removed.
func (m *Manager) StaleRemoved() int { return m.stale }

var labelPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{0,64}$`)

// NewWriter creates the file of a new blocking partition with the given
// number of subpartitions. label (letters, digits, '.', '_', '-'; at most
// 64) only makes the file name recognisable, e.g. a partition id in hex.
func (m *Manager) NewWriter(label string, subpartitions int) (*Writer, error) {
	if !labelPattern.MatchString(label) {
		return nil, fmt.Errorf("%w: label %q: only letters, digits, '.', '_' and '-', at most 64", ErrInvalidArgument, label)
	}
	if subpartitions <= 0 || subpartitions > maxSubpartitions {
		return nil, fmt.Errorf("%w: %d subpartitions: must be in 1..%d", ErrInvalidArgument, subpartitions, maxSubpartitions)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.seq++
	path := filepath.Join(m.dir, fmt.Sprintf("%06d-%s.data", m.seq, label))
	m.mu.Unlock()

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, &IOError{Op: "create file", Dir: m.cfg.Dir, Path: path, Err: err}
	}
	w := &Writer{
		m:    m,
		path: path,
		f:    f,
		subs: make([]index, subpartitions),
		buf:  make([]byte, 0, m.cfg.WriteBufferSize),
	}
	if !m.register(w) {
		w.discard()
		return nil, ErrClosed
	}
	return w, nil
}

func (m *Manager) register(c closer) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.open[c] = struct{}{}
	return true
}

func (m *Manager) unregister(c closer) {
	m.mu.Lock()
	delete(m.open, c)
	m.mu.Unlock()
}

// Close discards every writer and releases every partition of the
// manager, then removes its subdirectory and drops its lock. It is
// idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	open := m.open
	m.open = nil
	m.mu.Unlock()

	var errs []error
	for c := range open {
		errs = append(errs, c.discard())
	}
	if err := os.RemoveAll(m.dir); err != nil {
		errs = append(errs, &IOError{Op: "remove directory", Dir: m.cfg.Dir, Path: m.dir, Err: err})
	}
	errs = append(errs, m.lock.Close())
	return errors.Join(errs...)
}
