package main

// The images have no CA bundle (an empty base, images/), and authd may
// have to verify a public CA: an OTLP collector behind one, a managed
// PostgreSQL whose certificate chains to one. The fallback roots apply
// only where the system has none; a mounted bundle (SSL_CERT_FILE) still
// wins. govulncheck reports when they need an update.
import _ "golang.org/x/crypto/x509roots/fallback"
