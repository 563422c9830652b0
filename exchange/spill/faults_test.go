package spill_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qexchange/qexchange/exchange/spill"
	"golang.org/x/sys/unix"
)

func TestDiskFullFailsWriterAndRemovesPartialFile(t *testing.T) {
	dir := mountTmpfs(t, "size=1m", 0)
	m := newManager(t, spill.Config{Dir: dir, WriteBufferSize: 64 << 10})
	w, err := m.NewWriter("full", 2)
	if err != nil {
		t.Fatal(err)
	}
	seg := make([]byte, segmentSize)
	var appendErr error
	for i := 0; i < 100 && appendErr == nil; i++ { // 3.2 MiB into 1 MiB
		appendErr = w.Append(i%2, spill.Meta{}, seg)
	}
	var ioe *spill.IOError
	if !errors.As(appendErr, &ioe) || !errors.Is(appendErr, spill.ErrDiskFull) {
		t.Fatalf("writing 3 MiB into a 1 MiB tmpfs: %v, want *IOError wrapping ErrDiskFull", appendErr)
	}
	if ioe.Dir != dir || !strings.Contains(appendErr.Error(), dir) {
		t.Fatalf("error %q does not name the spill directory %s", appendErr, dir)
	}
	if names := dirEntries(t, m.Dir()); len(names) != 0 {
		t.Fatalf("partial files left after a full disk: %v", names)
	}
	if err := w.Append(0, spill.Meta{}, seg); !errors.Is(err, spill.ErrDiskFull) {
		t.Fatalf("append after the failure: %v, want the same error", err)
	}
	if _, err := w.Finish(); !errors.Is(err, spill.ErrDiskFull) {
		t.Fatalf("finish after the failure: %v, want the same error", err)
	}
	// The space is back: a partition that fits is written and read.
	p := writePartition(t, m, 2, 8, []int{segmentSize})
	if n := readAll(t, p, 1, -1, []int{segmentSize}); n != 8 {
		t.Fatalf("read %d buffers after the disk emptied, want 8", n)
	}
}

func TestDiskFullAtFinish(t *testing.T) {
	dir := mountTmpfs(t, "size=64k", 0)
	m := newManager(t, spill.Config{Dir: dir}) // 1 MiB buffer: nothing written before Finish
	w, err := m.NewWriter("full", 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := w.Append(0, spill.Meta{}, make([]byte, segmentSize)); err != nil {
			t.Fatalf("buffered append: %v", err)
		}
	}
	if _, err := w.Finish(); !errors.Is(err, spill.ErrDiskFull) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("finish into a 64 KiB tmpfs: %v, want ErrDiskFull naming %s", err, dir)
	}
	if names := dirEntries(t, m.Dir()); len(names) != 0 {
		t.Fatalf("partial files left: %v", names)
	}
}

func TestUnwritableDirectoryFailsAtCreation(t *testing.T) {
	var dir string
	if os.Geteuid() == 0 {
		// Root ignores permission bits; a read-only mount stops it.
		dir = mountTmpfs(t, "size=64k", unix.MS_RDONLY)
	} else {
		dir = t.TempDir()
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
	}
	for _, cfgDir := range []string{dir, filepath.Join(dir, "missing", "spill")} {
		_, err := spill.NewManager(spill.Config{Dir: cfgDir})
		var ioe *spill.IOError
		if !errors.As(err, &ioe) || !errors.Is(err, spill.ErrNotWritable) {
			t.Fatalf("NewManager(%s): %v, want *IOError wrapping ErrNotWritable", cfgDir, err)
		}
		if ioe.Dir != cfgDir || !strings.Contains(err.Error(), cfgDir) {
			t.Fatalf("error %q does not name %s", err, cfgDir)
		}
	}
}

// crashingProcessEnv makes the test binary (see TestMain) act as a
// producer process that spills a partition and then waits to be killed.
const crashingProcessEnv = "SPILL_TEST_CRASHING_PROCESS_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashingProcessEnv); dir != "" {
		crashingProcess(dir)
	}
	os.Exit(m.Run())
}

func crashingProcess(dir string) {
	m, err := spill.NewManager(spill.Config{Dir: dir})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	w, err := m.NewWriter("crash", 1)
	if err == nil {
		err = w.Append(0, spill.Meta{}, make([]byte, 1000))
	}
	if err == nil {
		_, err = w.Finish()
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("dir", m.Dir())
	// Block until killed: the test SIGKILLs this process, so nothing is
	// cleaned up, as after a real crash.
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(3)
}

func TestFilesOfACrashedProcessAreRemoved(t *testing.T) {
	base := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashingProcessEnv+"="+base)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	var childDir string
	select {
	case line := <-lines:
		var ok bool
		if childDir, ok = strings.CutPrefix(line, "dir "); !ok {
			t.Fatalf("helper process said %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("helper process did not start within 30 s")
	}
	if len(dirEntries(t, childDir)) != 1 {
		t.Fatalf("helper's dir %s holds %v, want its partition file", childDir, dirEntries(t, childDir))
	}

	// While the process lives, a new manager leaves its files alone.
	alive, err := spill.NewManager(spill.Config{Dir: base})
	if err != nil {
		t.Fatal(err)
	}
	if alive.StaleRemoved() != 0 {
		t.Fatalf("removed %d directories of a live process", alive.StaleRemoved())
	}
	if _, err := os.Stat(childDir); err != nil {
		t.Fatalf("live process's dir: %v", err)
	}

	// Crash it: SIGKILL, no cleanup.
	cmd.Process.Kill()
	cmd.Wait()
	killed = true
	if _, err := os.Stat(childDir); err != nil {
		t.Fatalf("crashed process's dir should still be there before a restart: %v", err)
	}

	// The next start in the same directory removes the dead process's
	// files, and only those: the live manager's directory stays.
	restarted := newManager(t, spill.Config{Dir: base})
	if restarted.StaleRemoved() != 1 {
		t.Fatalf("restart removed %d stale directories, want 1", restarted.StaleRemoved())
	}
	if _, err := os.Stat(childDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("crashed process's dir after restart: %v", err)
	}
	if _, err := os.Stat(alive.Dir()); err != nil {
		t.Fatalf("a live manager's dir was removed: %v", err)
	}
	if err := alive.Close(); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, base); len(names) != 1 || filepath.Join(base, names[0]) != restarted.Dir() {
		t.Fatalf("left in %s: %v, want only %s", base, names, restarted.Dir())
	}
}

func TestDiskFullErrorMessage(t *testing.T) {
	err := &spill.IOError{Op: "write", Dir: "/spill", Path: "/spill/proc-1-2/000001-p.data", Err: unix.ENOSPC}
	want := "spill: write /spill/proc-1-2/000001-p.data (spill directory /spill): no space left on device"
	if err.Error() != want || !errors.Is(err, spill.ErrDiskFull) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("%q, want %q wrapping ErrDiskFull and ENOSPC", err, want)
	}
	for errno, kind := range map[unix.Errno]error{unix.EDQUOT: spill.ErrDiskFull, unix.EROFS: spill.ErrNotWritable, unix.EACCES: spill.ErrNotWritable, unix.EIO: spill.ErrIO} {
		if e := (&spill.IOError{Err: errno}); !errors.Is(e, kind) {
			t.Errorf("%v is not %v", errno, kind)
		}
	}
}
