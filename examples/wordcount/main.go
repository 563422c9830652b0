// Command wordcount is a multi-process WordCount on qexchange: a
// coordinator (Flink's JobMaster role) and worker processes (the
// TaskExecutor role) that register and heartbeat over package rpc, while
// the words travel, hash-partitioned, through package exchange. See
// README.md.
//
//	wordcount coordinator -input FILE -workers 3 [-transport tcp|quic]
//	wordcount worker -id w1 -coordinator ADDR [-transport tcp|quic]
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: wordcount coordinator|worker [flags]  (-h for the flags)")
		return 2
	}
	switch args[0] {
	case "coordinator":
		return runCoordinator(args[1:], stdout, stderr)
	case "worker":
		return runWorker(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "wordcount: unknown command %q (want coordinator or worker)\n", args[0])
	return 2
}
