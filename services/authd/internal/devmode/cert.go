// Package devmode makes `authd serve --dev` self-contained (CONTRACT.md,
// Dev mode): a throwaway TLS certificate whose pin is printed so clients can
// pin it instead of skipping verification, and the back-office client's
// secret, kept in a 0600 file and never logged.
package devmode

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"

	"strongroom.dev/api/pinset"
)

// CertificateValidity is short on purpose: a dev certificate that leaks
// (it sits in process memory only, but still) is useless within a week,
// and dev servers are restarted far more often than that.
const CertificateValidity = 7 * 24 * time.Hour

// Certificate is a generated TLS certificate and its pin.
type Certificate struct {
	TLS tls.Certificate
	// Pin is base64(SHA-256(SubjectPublicKeyInfo)): the format of Android's
	// <pin digest="SHA-256"> and, prefixed with "sha256//", of curl's
	// --pinnedpubkey.
	Pin      string
	NotAfter time.Time
}

// NewCertificate generates a self-signed ECDSA P-256 certificate for
// 127.0.0.1, ::1 and localhost, valid from an hour before now (clock skew
// between the server and a phone emulator) for CertificateValidity.
func NewCertificate(now time.Time) (Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certificate{}, fmt.Errorf("generate dev certificate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return Certificate{}, fmt.Errorf("generate dev certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "strongroom dev", Organization: []string{"Strongroom dev mode"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CertificateValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return Certificate{}, fmt.Errorf("create dev certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return Certificate{}, fmt.Errorf("parse dev certificate: %w", err)
	}
	return Certificate{
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Pin:      Pin(leaf),
		NotAfter: leaf.NotAfter,
	}, nil
}

// Pin returns the pin of cert's key (pinset.CertPin).
func Pin(cert *x509.Certificate) string { return pinset.CertPin(cert) }
