package cli

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsServer is -metrics ADDR: /metrics (the exchange's collectors of
// every environment the command creates, plus the Go runtime's and the
// process's) and /debug/pprof/ on a mux of its own, so nothing else
// registered on http.DefaultServeMux is exposed.
type metricsServer struct {
	reg  *prometheus.Registry
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
}

// startMetrics listens on addr before any run, so a bad or busy address
// is a usage error, not a failure halfway through.
func startMetrics(addr string) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	m := &metricsServer{reg: reg, ln: ln, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(m.done)
		_ = m.srv.Serve(ln) // ErrServerClosed after Close
	}()
	return m, nil
}

// Addr is the address the server listens on.
func (m *metricsServer) Addr() string { return m.ln.Addr().String() }

// registerer is what an environment's Config.Metrics gets: nil without
// -metrics; with labels (e.g. node=producer) when a command creates
// several environments at once, so their series do not collide.
func (m *metricsServer) registerer(labels prometheus.Labels) prometheus.Registerer {
	if m == nil {
		return nil
	}
	if len(labels) == 0 {
		return m.reg
	}
	return prometheus.WrapRegistererWith(labels, m.reg)
}

// Close stops the server (in-flight scrapes get a second to finish).
func (m *metricsServer) Close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	<-m.done
}
