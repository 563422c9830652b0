// Package lossy is the glue between the exchange bench command and the
// link emulator (bench/linkemu) for the lossy-network benchmark: parsing
// link settings (1%, 100mbit, sweep specs), opening the link and checking
// its fidelity with the probe before every benchmark, putting each
// environment's sockets in the right namespace, resetting the loss pattern
// per transport, and turning what the consumers measured into the
// per-transport metrics (latency CDF, per-channel throughput and stall
// time, emulator counters) plus the ideal-transport limit and the charts.
//
// Layout: units.go and sweep.go parse flags; link.go opens and probes the
// link; metrics.go summarises channels and latency; ideal.go computes the
// limit; table.go prints link-mode tables; charts.go draws PNGs.
package lossy
