package exchange

import (
	"errors"
	"net"
	"testing"
)

func TestHostAddressPrefersGlobalIPv4(t *testing.T) {
	list := func(ips ...string) func() ([]net.IP, error) {
		return func() ([]net.IP, error) {
			var out []net.IP
			for _, s := range ips {
				out = append(out, net.ParseIP(s))
			}
			return out, nil
		}
	}
	for _, tc := range []struct {
		name string
		ips  []string
		want string
	}{
		{"v4 after loopback and v6", []string{"127.0.0.1", "::1", "2001:db8::5", "10.1.2.3"}, "10.1.2.3"},
		{"only v6 global", []string{"127.0.0.1", "fe80::1", "2001:db8::5"}, "2001:db8::5"},
		{"only loopback", []string{"::1", "127.0.0.1"}, "::1"},
		{"link-local is not global", []string{"fe80::1", "127.0.0.1"}, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := hostAddress(list(tc.ips...))
			if err != nil || got.String() != tc.want {
				t.Fatalf("hostAddress(%v) = %v, %v; want %s", tc.ips, got, err, tc.want)
			}
		})
	}
	if _, err := hostAddress(list()); err == nil {
		t.Fatal("no addresses: want an error")
	}
}

func TestAdvertisedAddr(t *testing.T) {
	for _, tc := range []struct {
		advertise, listening string
		wantErr              bool
		want                 string // "" = any non-wildcard with the listening port
	}{
		{"", "127.0.0.1:7000", false, "127.0.0.1:7000"},
		{"", "[::1]:7000", false, "[::1]:7000"},
		{"", "0.0.0.0:7000", false, ""},
		{"", "[::]:7000", false, ""},
		{"", ":7000", false, ""},
		{"", "mem:3", false, "mem:3"},
		{"gateway.example:9000", "0.0.0.0:7000", false, "gateway.example:9000"},
		{"0.0.0.0:9000", "0.0.0.0:7000", true, ""},
		{"host-without-port", "0.0.0.0:7000", true, ""},
		{"host:0", "0.0.0.0:7000", true, ""},
		{":9000", "0.0.0.0:7000", true, ""},
	} {
		got, err := advertisedAddr(tc.advertise, tc.listening)
		if tc.wantErr {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("advertisedAddr(%q, %q) = %q, %v; want ErrInvalidConfig", tc.advertise, tc.listening, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("advertisedAddr(%q, %q): %v", tc.advertise, tc.listening, err)
			continue
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("advertisedAddr(%q, %q) = %q, want %q", tc.advertise, tc.listening, got, tc.want)
		}
		host, port, err := net.SplitHostPort(got)
		if err != nil || port != "7000" && tc.want == "" {
			t.Errorf("advertisedAddr(%q, %q) = %q: bad host:port", tc.advertise, tc.listening, got)
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			t.Errorf("advertisedAddr(%q, %q) = %q: a wildcard", tc.advertise, tc.listening, got)
		}
	}
}
