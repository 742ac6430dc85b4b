package main

// The image has no CA bundle (an empty base, images/), and the operator
// may export traces to a collector behind a public CA. The fallback roots
// apply only where the system has none; a mounted bundle (SSL_CERT_FILE)
// still wins, and the API server's CA comes from the ServiceAccount
// anyway. authd's TestFallbackRoots shows the mechanism at work.
import _ "golang.org/x/crypto/x509roots/fallback"
