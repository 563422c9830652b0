package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Limits of the repetition and connection flags.
const (
	MaxSeeds       = 20
	MaxRepeat      = 100
	MaxConnections = 64
	defaultRepeat  = 3
)

// seedsValue is -seeds: "5" (seeds 1..5) or a list "1,7,11".
type seedsValue struct {
	s     string
	seeds []int64
}

func (v *seedsValue) String() string { return v.s }

func (v *seedsValue) Set(s string) error {
	seeds, err := parseSeeds(s)
	if err != nil {
		return err
	}
	v.s, v.seeds = s, seeds
	return nil
}

// parseSeeds parses -seeds: one number N is the seeds 1..N; a
// comma-separated list is those seeds, in that order. At most MaxSeeds,
// no repeats, none negative.
func parseSeeds(s string) ([]int64, error) {
	parts := strings.Split(s, ",")
	var seeds []int64
	seen := map[int64]bool{}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("bad seed %q in %q (want a count like 5 for seeds 1..5, or a list of seeds like 1,2,3)", p, s)
		}
		if seen[n] {
			return nil, fmt.Errorf("seed %d given twice in %q", n, s)
		}
		seen[n] = true
		seeds = append(seeds, n)
	}
	if len(seeds) == 1 {
		n := seeds[0]
		if n < 1 || n > MaxSeeds {
			return nil, fmt.Errorf("%d seeds: want 1 to %d (or a list of seeds like 1,2,3)", n, MaxSeeds)
		}
		seeds = seeds[:0]
		for i := int64(1); i <= n; i++ {
			seeds = append(seeds, i)
		}
	}
	if len(seeds) > MaxSeeds {
		return nil, fmt.Errorf("%d seeds is more than %d", len(seeds), MaxSeeds)
	}
	return seeds, nil
}

// repeatOptions are the flags that repeat measurements and the transport
// settings every command shares (-connections, -qlog).
type repeatOptions struct {
	repeat      int
	calibrate   time.Duration
	seeds       seedsValue
	connections int
	qlogDir     string
}

func (r *repeatOptions) register(fs *flag.FlagSet, cmd string) {
	if cmd == "bench" {
		fs.IntVar(&r.repeat, "repeat", defaultRepeat, "loopback: run the transports this many rounds, interleaved (the order rotates each round); the table gives median [min-max] over rounds and every ratio is formed within a round")
		fs.DurationVar(&r.calibrate, "calibrate", 500*time.Millisecond, "loopback: before the rounds, run each raw baseline twice this long to measure the noise floor (0: skip)")
		fs.Var(&r.seeds, "seeds", fmt.Sprintf("emulated link: run once per seed, e.g. 5 (seeds 1..5) or 1,7,11 (at most %d); the table gives median [min-max] over seeds and the per-seed quic/tcp ratios", MaxSeeds))
	}
	fs.IntVar(&r.connections, "connections", 1, fmt.Sprintf("connections per peer node for both tcp and quic, 1..%d (channels are spread evenly over them)", MaxConnections))
	fs.StringVar(&r.qlogDir, "qlog", "", "write quic-go's qlog traces of QUIC runs into this directory (created if needed)")
}

// validateRepeat checks the repetition flags; link says whether the run
// goes over the emulated link.
func (o *options) validateRepeat() error {
	r := &o.rep
	if r.connections < 1 || r.connections > MaxConnections {
		return usagef("-connections must be 1 to %d (got %d)", MaxConnections, r.connections)
	}
	if o.cmd != "bench" {
		return nil
	}
	if r.repeat < 1 || r.repeat > MaxRepeat {
		return usagef("-repeat must be 1 to %d rounds (got %d)", MaxRepeat, r.repeat)
	}
	if r.calibrate < 0 {
		return usagef("-calibrate must be >= 0 (got %v)", r.calibrate)
	}
	if o.link.on {
		if o.set["repeat"] || o.set["calibrate"] {
			return usagef("-repeat and -calibrate are for the loopback bench; on the emulated link repeat with -seeds")
		}
		r.repeat, r.calibrate = 1, 0
		if o.set["seeds"] && o.set["seed"] {
			return usagef("-seed and -seeds both choose the loss pattern: give one")
		}
		if !o.set["seeds"] {
			r.seeds.seeds = []int64{o.link.seed}
		}
		return nil
	}
	if o.set["seeds"] {
		return usagef("-seeds needs the emulated link: add -loss, -rtt, -rate or -sweep")
	}
	return nil
}

// validateQlog makes sure the qlog directory exists and takes files, so
// that a bad -qlog fails before any run.
func (o *options) validateQlog() error {
	if o.rep.qlogDir == "" {
		return nil
	}
	return checkWritableDir("qlog", o.rep.qlogDir)
}

// checkWritableDir creates dir if needed and writes and removes a file in
// it: a usage error naming -flag otherwise.
func checkWritableDir(flag, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return usagef("-%s %s: cannot create the directory: %v", flag, dir, err)
	}
	f, err := os.CreateTemp(dir, "."+flag+"-check-*")
	if err != nil {
		return usagef("-%s %s: cannot write there: %v", flag, dir, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return usagef("-%s %s: cannot remove the test file %s: %v", flag, dir, filepath.Base(name), err)
	}
	return nil
}
