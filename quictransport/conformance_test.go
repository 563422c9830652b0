package quictransport_test

import (
	"testing"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
	"github.com/qexchange/qexchange/quictransport"
)

// TestConformance runs the transport suite. The many-channels case uses
// 4096 channels on one connection; under the race detector (about ten
// times slower, with 4 goroutines per channel) it uses 1024, and
// TestManyChannels4096 (scale_test.go, lighter traffic) covers 4096
// channels in both modes.
func TestConformance(t *testing.T) {
	scale := 4096
	if raceEnabled {
		scale = 1024
	}
	transporttest.Run(t, transporttest.Options{
		Name:          quictransport.Name,
		Factory:       func(t testing.TB) exchange.TransportFactory { return testFactory(t) },
		ScaleChannels: scale,
	})
}
