package mounted

import "crypto/tls"

// Certificate serves the TLS certificate chain and key of two PEM files
// (a kubernetes.io/tls Secret's tls.crt and tls.key), reloaded when they
// change: the chain and the key must match, so a half-done update (a new
// certificate with the old key) keeps the old pair in use.
func Certificate(certFile, keyFile string, o Options) (*Value[*tls.Certificate], error) {
	return New([]string{certFile, keyFile}, func(b [][]byte, _ *tls.Certificate) (*tls.Certificate, error) {
		c, err := tls.X509KeyPair(b[0], b[1]) // also parses c.Leaf
		if err != nil {
			return nil, err
		}
		return &c, nil
	}, o)
}

// GetCertificate is a tls.Config.GetCertificate that serves v's current
// certificate: every new connection gets the newest good one.
func GetCertificate(v *Value[*tls.Certificate]) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return v.Get(), nil }
}
