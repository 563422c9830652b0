// Command exchange runs, benchmarks and compares the exchange's
// transports: exchange bench | serve | consume. See exchange -h.
package main

import (
	"os"

	"github.com/qexchange/qexchange/cmd/exchange/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
