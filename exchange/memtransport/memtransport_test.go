package memtransport_test

import (
	"testing"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/memtransport"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

func TestConformance(t *testing.T) {
	n := memtransport.NewNetwork()
	transporttest.Run(t, transporttest.Options{
		Name:          "mem",
		Factory:       func(testing.TB) exchange.TransportFactory { return n.Factory() },
		ScaleChannels: 4096,
	})
}
