package tlsconf

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Fingerprint returns the SHA-256 of cert's leaf certificate (DER), the
// value Options.PinnedSHA256 lists. A certificate without a leaf has the
// zero fingerprint.
func Fingerprint(cert *tls.Certificate) [32]byte {
	if cert == nil || len(cert.Certificate) == 0 {
		return [32]byte{}
	}
	return fingerprintDER(cert.Certificate[0])
}

func fingerprintDER(der []byte) [32]byte { return sha256.Sum256(der) }

// SelfSigned creates an ephemeral self-signed ECDSA P-256 certificate for
// hosts (IP addresses and DNS names; "localhost" and 127.0.0.1 when none
// are given), valid for one year, and returns it with its fingerprint.
// Pin the fingerprint on the peers (Options.PinnedSHA256), or add the
// certificate to their RootCAs: it is its own CA.
func SelfSigned(hosts ...string) (tls.Certificate, [32]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, [32]byte{}, err
	}
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	now := time.Now()
	tmpl := template(serial, "qexchange self-signed", now.Add(-time.Hour), now.Add(365*24*time.Hour), hosts)
	return makeCert(tmpl, key.Public(), key, rand.Reader)
}

// DeriveSelfSigned derives a self-signed Ed25519 certificate
// deterministically from secret: every process given the same secret
// derives the same certificate and fingerprint, so nodes started with a
// shared secret pin each other (Options.PinnedSHA256) without exchanging
// files. Anyone who knows the secret can impersonate a node: treat it as
// a key. The certificate names "qexchange" and is valid from 2000 to 2100.
func DeriveSelfSigned(secret string) (tls.Certificate, [32]byte, error) {
	if secret == "" {
		return tls.Certificate{}, [32]byte{}, errors.New("tlsconf: DeriveSelfSigned: empty secret")
	}
	seed := sha256.Sum256([]byte("qexchange/1 certificate key\x00" + secret))
	key := ed25519.NewKeyFromSeed(seed[:])
	sn := sha256.Sum256([]byte("qexchange/1 certificate serial\x00" + secret))
	serial := new(big.Int).SetBytes(sn[:16])
	tmpl := template(serial, "qexchange derived", time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), []string{"qexchange"})
	// Ed25519 signatures are deterministic: no randomness is read.
	return makeCert(tmpl, key.Public(), key, errReader{})
}

func template(serial *big.Int, cn string, from, until time.Time, hosts []string) *x509.Certificate {
	t := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             from,
		NotAfter:              until,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, h)
		}
	}
	return t
}

func makeCert(tmpl *x509.Certificate, pub, priv any, rnd interface{ Read([]byte) (int, error) }) (tls.Certificate, [32]byte, error) {
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, fmt.Errorf("tlsconf: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, [32]byte{}, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	return cert, fingerprintDER(der), nil
}

// errReader fails every read: it proves DeriveSelfSigned uses no
// randomness.
type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("tlsconf: deterministic certificate must not read randomness")
}
