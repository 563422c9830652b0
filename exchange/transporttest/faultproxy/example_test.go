package faultproxy_test

import (
	"fmt"
	"io"
	"net"

	"github.com/qexchange/qexchange/exchange/transporttest/faultproxy"
)

// A TCP proxy in front of a server: clients dial the proxy's Addr, and
// Cut resets their connections as a failed link would.
func ExampleTCP() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c) // echo
	}()

	p, err := faultproxy.NewTCP(ln.Addr().String())
	if err != nil {
		panic(err)
	}
	defer p.Close()
	c, _ := net.Dial("tcp", p.Addr())
	defer c.Close()
	_, _ = c.Write([]byte("ping"))
	buf := make([]byte, 4)
	_, _ = io.ReadFull(c, buf)
	fmt.Printf("through the proxy: %s\n", buf)

	p.Cut()
	_, err = c.Read(buf)
	fmt.Println("after Cut, read fails:", err != nil)
	// Output:
	// through the proxy: ping
	// after Cut, read fails: true
}

// A UDP proxy that drops 2% of the datagrams each way, the same ones on
// every run with the same seed.
func ExampleRandomLoss() {
	drop := faultproxy.RandomLoss(0.02, 42)
	dropped := 0
	for seq := range uint64(100_000) {
		if drop(faultproxy.Datagram{Dir: faultproxy.ToClient, Seq: seq, Len: 1200}) {
			dropped++
		}
	}
	fmt.Printf("about 2%%: %v\n", dropped > 1800 && dropped < 2200)
	// Output:
	// about 2%: true
}
