// Package tlsconf is the mutual TLS 1.3 of the network transports,
// written once for tcptransport and quictransport (docs/architecture.md,
// "QUIC specifics", "Mutual TLS"): loading a node's certificate, verifying
// the peer's by pinned SHA-256 or by CA (never skipped), and the
// certificate helpers SelfSigned and DeriveSelfSigned.
//
// Applications set the transports' Config fields (Certificate, CertFile,
// KeyFile, CAFile, RootCAs, PinnedSHA256, ServerName); the transports
// re-export the helpers. The package is public only because Go's internal
// rule would otherwise need a directory above both transports.
package tlsconf
