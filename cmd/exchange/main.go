// Command exchange runs, benchmarks and compares the exchange's
// transports: exchange bench | serve | consume. See exchange -h.
package main

import (
	"os"

	"github.com/qexchange/qexchange/bench/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
