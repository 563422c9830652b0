package chanproto

import (
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Admission caps the connections a node serves at once, in total and
// per remote IP address, so that a flood of connections leaves room for
// healthy consumers (docs/architecture.md, "Failure policy"). Both
// transports admit every accepted connection through one.
type Admission struct {
	max, perAddress int
	log             zerolog.Logger

	mu      sync.Mutex
	total   int
	byAddr  map[string]int
	refused int64
	logged  time.Time // last warning: at most one a second
}

// NewAdmission caps connections at max in total and perAddress from one
// IP address; refusals are logged on log.
func NewAdmission(max, perAddress int, log zerolog.Logger) *Admission {
	return &Admission{max: max, perAddress: perAddress, log: log, byAddr: make(map[string]int)}
}

// Admit counts a connection from remote (an address as net.Addr.String
// gives it) if it is within both caps, and reports whether it was; a
// refused connection must be closed at once.
func (a *Admission) Admit(remote string) bool {
	ip := hostOf(remote)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total < a.max && a.byAddr[ip] < a.perAddress {
		a.total++
		a.byAddr[ip]++
		return true
	}
	a.refused++
	if now := time.Now(); now.Sub(a.logged) >= time.Second {
		a.logged = now
		a.log.Warn().Str("peer", remote).Int("connections", a.total).Int("from_address", a.byAddr[ip]).
			Int("max", a.max).Int("max_per_address", a.perAddress).
			Msg("connection refused: too many connections (MaxConnections, MaxConnectionsPerAddress)")
	}
	return false
}

// Leave uncounts a connection from remote that Admit let in.
func (a *Admission) Leave(remote string) {
	ip := hostOf(remote)
	a.mu.Lock()
	a.total--
	if a.byAddr[ip]--; a.byAddr[ip] <= 0 {
		delete(a.byAddr, ip)
	}
	a.mu.Unlock()
}

// Refused is the number of connections refused so far.
func (a *Admission) Refused() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refused
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
