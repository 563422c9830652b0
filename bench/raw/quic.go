package raw

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN of the raw QUIC baseline (not the exchange's protocol).
const ALPN = "qexchange-raw/1"

// QUICOptions mirror the QUIC transport's settings.
type QUICOptions struct {
	// Certificate is presented by both sides; Pin is its leaf's SHA-256,
	// which both sides require of the peer (as quictransport with
	// PinnedSHA256).
	Certificate tls.Certificate
	Pin         [32]byte
	// Stream and connection receive windows (initial = maximum).
	StreamReceiveWindow, ConnectionReceiveWindow uint64
	// UDPBufferSize is requested for both sockets.
	UDPBufferSize int
	// ListenPacket creates the two UDP sockets (default: loopback
	// sockets); the link emulator plugs in here as in the QUIC transport.
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// Addr is the address the sockets bind (default 127.0.0.1:0).
	Addr string
	// ClientListenPacket and ClientAddr, when set, create the reading
	// (dialing) side's socket instead, e.g. in the other namespace of an
	// emulated link.
	ClientListenPacket func(network, addr string) (net.PacketConn, error)
	ClientAddr         string
}

func (q QUICOptions) verify(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return errors.New("raw-quic: peer presented no certificate")
	}
	if sha256.Sum256(raw[0]) != q.Pin {
		return errors.New("raw-quic: peer certificate is not pinned")
	}
	return nil
}

func (q QUICOptions) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:           10 * time.Second,
		MaxIdleTimeout:                 30 * time.Second,
		KeepAlivePeriod:                5 * time.Second,
		InitialStreamReceiveWindow:     q.StreamReceiveWindow,
		MaxStreamReceiveWindow:         q.StreamReceiveWindow,
		InitialConnectionReceiveWindow: q.ConnectionReceiveWindow,
		MaxConnectionReceiveWindow:     q.ConnectionReceiveWindow,
		MaxIncomingStreams:             16,
		MaxIncomingUniStreams:          -1,
	}
}

func (q QUICOptions) listenUDP() (net.PacketConn, error) {
	listen, addr := q.ListenPacket, q.Addr
	if listen == nil {
		listen = net.ListenPacket
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	pc, err := listen("udp", addr)
	if err != nil {
		return nil, err
	}
	if c, ok := pc.(*net.UDPConn); ok && q.UDPBufferSize > 0 {
		_ = c.SetReadBuffer(q.UDPBufferSize)
		_ = c.SetWriteBuffer(q.UDPBufferSize)
		forceBuffers(c, q.UDPBufferSize)
	}
	return pc, nil
}

// QUIC runs the raw QUIC baseline on loopback: one connection, one
// bidirectional stream opened by the reading side (like an exchange input
// channel), the accepting side writes.
func QUIC(ctx context.Context, o Options, q QUICOptions) (*Result, error) {
	if q.StreamReceiveWindow == 0 {
		q.StreamReceiveWindow = 4 << 20
	}
	if q.ConnectionReceiveWindow == 0 {
		q.ConnectionReceiveWindow = max(64<<20, 4*q.StreamReceiveWindow)
	}
	sc, err := q.listenUDP()
	if err != nil {
		return nil, fmt.Errorf("raw-quic: listen: %w", err)
	}
	cq := q
	if q.ClientListenPacket != nil {
		cq.ListenPacket, cq.Addr = q.ClientListenPacket, q.ClientAddr
	}
	cc, err := cq.listenUDP()
	if err != nil {
		sc.Close()
		return nil, fmt.Errorf("raw-quic: listen: %w", err)
	}
	st := &quic.Transport{Conn: sc}
	ct := &quic.Transport{Conn: cc}
	var once sync.Once
	var srvConn, cliConn *quic.Conn
	var mu sync.Mutex
	closeAll := func() {
		once.Do(func() {
			mu.Lock()
			if srvConn != nil {
				srvConn.CloseWithError(0, "done")
			}
			if cliConn != nil {
				cliConn.CloseWithError(0, "done")
			}
			mu.Unlock()
			st.Close()
			ct.Close()
			sc.Close()
			cc.Close()
		})
	}
	ln, err := st.Listen(&tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{q.Certificate},
		NextProtos:            []string{ALPN},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: q.verify,
	}, q.quicConfig())
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("raw-quic: listen: %w", err)
	}
	cert := q.Certificate
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type accepted struct {
		s   *quic.Stream
		err error
	}
	ach := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept(hctx)
		if err != nil {
			ach <- accepted{nil, err}
			return
		}
		mu.Lock()
		srvConn = c
		mu.Unlock()
		s, err := c.AcceptStream(hctx)
		if err == nil {
			var b [1]byte
			_, err = s.Read(b[:])
		}
		ach <- accepted{s, err}
	}()
	conn, err := ct.Dial(hctx, sc.LocalAddr(), &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetClientCertificate:  func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		NextProtos:            []string{ALPN},
		ServerName:            "localhost",
		InsecureSkipVerify:    true, // replaced by the pin check in VerifyPeerCertificate
		VerifyPeerCertificate: q.verify,
	}, q.quicConfig())
	if err != nil {
		cancel()
		<-ach
		ln.Close()
		closeAll()
		return nil, fmt.Errorf("raw-quic: dial: %w", err)
	}
	mu.Lock()
	cliConn = conn
	mu.Unlock()
	rs, err := conn.OpenStreamSync(hctx)
	if err == nil {
		_, err = rs.Write([]byte{1}) // the server accepts a stream once it carries data
	}
	if err != nil {
		cancel()
		<-ach
		ln.Close()
		closeAll()
		return nil, fmt.Errorf("raw-quic: open stream: %w", err)
	}
	a := <-ach
	ln.Close()
	if a.err != nil {
		closeAll()
		return nil, fmt.Errorf("raw-quic: accept: %w", a.err)
	}
	return run(ctx, pipe{w: a.s, r: rs, closeAll: closeAll}, o)
}
