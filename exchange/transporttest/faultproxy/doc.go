// Package faultproxy holds loopback proxies that inject network faults
// between a consumer and a producer node, for tests of any transport.
//
// A test starts a proxy in front of the producer's address and gives the
// proxy's Addr to the consumer's channels (exchange.ChannelSpec.Addr), so
// no transport needs a test hook:
//
//   - TCP relays TCP connections and can cut all of them, or those a
//     predicate selects, on demand (with a reset, as a failed middlebox
//     or a killed peer would).
//   - UDP relays datagrams, one upstream socket per client so that the
//     target sees each client as a distinct peer, and drops those a rule
//     selects: RandomLoss for seeded random loss, any predicate for
//     targeted loss, and Blackhole to drop everything from now on.
//
// Both satisfy transporttest.Proxy (Addr, Cut, Close). Close stops the
// proxy, closes every socket it opened and waits for its goroutines.
package faultproxy
