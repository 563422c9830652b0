package tcptransport

import (
	"testing"

	"github.com/qexchange/qexchange/exchange"
	"github.com/qexchange/qexchange/exchange/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Options{
		Name:          Name,
		Factory:       func(testing.TB) exchange.TransportFactory { return New(Config{}) },
		ScaleChannels: 1024,
	})
}
