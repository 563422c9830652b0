package exchange

import (
	"net"
	"strconv"
)

// advertisedAddr is the address a node gives its peers: AdvertiseAddr if
// set, else the listening address, with a wildcard host (0.0.0.0, ::, or
// none) replaced by an address of this host that others can dial.
// Reporting "[::]:7000" would send peers to themselves.
func advertisedAddr(advertise, listening string) (string, error) {
	if advertise != "" {
		host, port, err := net.SplitHostPort(advertise)
		if err != nil || host == "" {
			return "", configError("AdvertiseAddr", advertise, "must be host:port with a host peers can dial")
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return "", configError("AdvertiseAddr", advertise, "needs a port in 1..65535")
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return "", configError("AdvertiseAddr", advertise, "is a wildcard address; give one peers can dial")
		}
		return advertise, nil
	}
	host, port, err := net.SplitHostPort(listening)
	if err != nil {
		return listening, nil // not host:port (e.g. an in-memory transport's name)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listening, nil
	}
	ip, err := hostAddress(interfaceAddrs)
	if err != nil {
		return "", configError("AdvertiseAddr", "", "listening on "+listening+" but no address of this host found ("+err.Error()+"): set AdvertiseAddr")
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// interfaceAddrs lists the addresses of the host's interfaces that are up.
func interfaceAddrs() ([]net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var ips []net.IP
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	return ips, nil
}

// hostAddress picks the address to advertise for a wildcard listener:
// the first global unicast IPv4 address, else the first global unicast
// IPv6 one, else loopback (a host with no other interface can only be
// reached from itself).
func hostAddress(list func() ([]net.IP, error)) (net.IP, error) {
	ips, err := list()
	if err != nil {
		return nil, err
	}
	var v6, loop net.IP
	for _, ip := range ips {
		switch {
		case ip.IsGlobalUnicast() && ip.To4() != nil:
			return ip, nil
		case ip.IsGlobalUnicast() && v6 == nil:
			v6 = ip
		case ip.IsLoopback() && loop == nil:
			loop = ip
		}
	}
	if v6 != nil {
		return v6, nil
	}
	if loop != nil {
		return loop, nil
	}
	return nil, errNoHostAddress
}

var errNoHostAddress = &net.AddrError{Err: "no interface address up"}
