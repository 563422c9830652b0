package linkemu_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/qexchange/qexchange/bench/linkemu"
)

// A TCP connection over a 2% loss, 20 ms RTT, 50 Mbit/s link.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := linkemu.RemoveStale(""); err != nil { // leftovers of crashed runs
		log.Print(err)
	}
	link, err := linkemu.New(ctx, linkemu.Symmetric(0.02, 0, 20*time.Millisecond, 50_000_000, 0, 1))
	if err != nil {
		log.Fatal(err) // e.g. linkemu: not permitted: ... run as root (sudo) ...
	}
	defer link.Close()

	res, err := link.Probe(ctx, linkemu.ProbeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if err := res.Check(); err != nil {
		log.Fatal(err)
	}

	ln, err := link.ListenTCP(linkemu.B, link.AddrB().String()+":0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	conn, err := link.DialTCP(ctx, linkemu.A, ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	_, _ = conn.Write(make([]byte, 1<<20))
	conn.Close()
	st := link.Stats()
	fmt.Println(st.AtoB.PacketsIn, st.AtoB.DroppedLoss)
}
