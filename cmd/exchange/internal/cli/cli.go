package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
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

Run 'exchange <command> -h' for the flags of a command.
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
	case "bench", "serve", "consume":
	default:
		fmt.Fprintf(stderr, "exchange: unknown command %q (want bench, serve or consume; see exchange -h)\n", cmd)
		return ExitUsage
	}
	o, err := parse(cmd, args[1:], stdout)
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
	log := zerolog.Nop()
	if o.verbose {
		log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05.000"}).With().Timestamp().Str("cmd", cmd).Logger().Level(zerolog.DebugLevel)
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
