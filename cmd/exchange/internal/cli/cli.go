package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/rs/zerolog"
)

const topUsage = `usage: exchange <command> [flags]

commands:
  bench     run producers and consumers in this process over tcp, quic and
            the raw TCP/QUIC baselines; verify every record; report
            throughput, latency and CPU (table, and JSON with -json)
  serve     host producer partitions for consumers in other processes
  consume   read and verify every channel of a serve process

Run 'exchange <command> -h' for the flags of a command, 'exchange -version'
for the version and the revision the binary was built from.
Exit codes: 0 success, 1 failure (including any lost, duplicated,
reordered or corrupted record), 2 wrong flags.
`

// Main runs the command in args (without the program name) and returns
// the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainWithHooks(args, stdout, stderr, Hooks{})
}

// MainWithHooks is Main with socket hooks for every transport and raw
// baseline (the link emulator creates sockets in network namespaces).
func MainWithHooks(args []string, stdout, stderr io.Writer, hooks Hooks) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return ExitUsage
	}
	cmd := args[0]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return ExitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, versionLine())
		return ExitOK
	case "bench", "serve", "consume":
	default:
		fmt.Fprintf(stderr, "exchange: unknown command %q (want bench, serve or consume; see exchange -h)\n", cmd)
		return ExitUsage
	}
	o, err := parse(cmd, args[1:], stdout)
	if err == nil && o.showVersion {
		fmt.Fprintln(stdout, versionLine())
		return ExitOK
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "exchange %s: %s\n", cmd, ue.msg)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "exchange %s: %v\n", cmd, err)
		return ExitUsage
	}
	o.progressEvery = hooks.ProgressEvery
	if o.progressEvery <= 0 {
		o.progressEvery = defaultProgressEvery
	}
	errTTY := isTerminalWriter(stderr)
	o.stderrTTY = errTTY
	// The log, the progress reports and the final messages share stderr
	// from several goroutines.
	stderr = &syncWriter{w: stderr}
	if o.metricsAddr != "" {
		m, err := startMetrics(o.metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "exchange %s: -metrics %s: %v\n", cmd, o.metricsAddr, err)
			return ExitUsage
		}
		defer m.Close()
		o.metrics = m
		fmt.Fprintf(stderr, "exchange %s: metrics on http://%s/metrics, profiles on http://%s/debug/pprof/\n", cmd, m.Addr(), m.Addr())
	}
	log := zerolog.Nop()
	if o.verbose {
		// No colour codes in redirected output (files, pipes, CI logs).
		cw := zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05.000", NoColor: !errTTY}
		log = zerolog.New(cw).With().Timestamp().Str("cmd", cmd).Logger().Level(zerolog.DebugLevel)
		log.Info().Str("version", versionLine()).Msg("starting")
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "exchange %s: -cpuprofile: %v\n", cmd, err)
			return ExitUsage
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "exchange %s: -cpuprofile: %v\n", cmd, err)
			return ExitUsage
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "bench":
		return runBench(ctx, o, hooks, stdout, stderr, log)
	case "serve":
		return runServe(ctx, o, hooks, stdout, stderr, log)
	default:
		return runConsume(ctx, o, hooks, stdout, stderr, log)
	}
}

// versionLine is -version: the module version (or "(devel)") and the
// VCS revision the binary was built from, when Go recorded them.
func versionLine() string {
	version, rev, at, modified, goVersion := "(devel)", "", "", false, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "exchange " + version
	if rev != "" {
		line += " " + rev
		if at != "" {
			line += " " + at
		}
		if modified {
			line += " (modified)"
		}
	}
	if goVersion != "" {
		line += " " + goVersion
	}
	return line
}

// syncWriter serialises writes to stderr.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// isTerminalWriter reports whether w is a terminal.
func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isTerminal(f.Fd())
}
