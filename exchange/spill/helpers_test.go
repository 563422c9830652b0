package spill_test

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/qexchange/qexchange/exchange/spill"
	"github.com/qexchange/qexchange/exchange/wire"
	"golang.org/x/sys/unix"
)

func newManager(t testing.TB, cfg spill.Config) *spill.Manager {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	m, err := spill.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// payloadFor is the deterministic content of buffer i of subpartition
// sub: its size varies and it carries its identity, so a reader can tell
// a buffer from the wrong place.
func payloadFor(sub, i, size int) []byte {
	b := make([]byte, size)
	fillPayload(b, sub, i)
	return b
}

func fillPayload(b []byte, sub, i int) {
	for j := range b {
		b[j] = byte(sub*31 + i*7 + j)
	}
	if len(b) >= 8 {
		binary.BigEndian.PutUint32(b, uint32(sub))
		binary.BigEndian.PutUint32(b[4:], uint32(i))
	}
}

func metaFor(sub, i int) spill.Meta {
	m := spill.Meta{DataType: wire.DataBuffer, Compressed: (sub+i)%3 == 0}
	if i%17 == 16 {
		m = spill.Meta{DataType: wire.EventBuffer}
	}
	return m
}

// mountTmpfs mounts a tmpfs of the given size on a fresh directory and
// unmounts it in cleanup. It needs root (CI runs as root).
func mountTmpfs(t *testing.T, opts string, flags uintptr) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; CI runs as root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name()
	}
	return names
}
