package controller

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

// FuzzParsers feeds hostile bytes to everything the controller parses out
// of Secrets and ConfigMaps (someone may edit them by hand): nothing
// panics, and an error never quotes the input (it may hold a key).
func FuzzParsers(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pemKey, err := encodeKey(key)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := issueCert(key, []string{"a.example"}, start, start.Add(24*time.Hour), nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(pemKey), string(cert), "", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n", "a.b.c", "e30.e30.e30", "x.eyJ2ZXJzaW9uIjoiMSJ9.y",
		strings.Repeat("-----BEGIN X-----\n-----END X-----\n", 50),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		secretish := len(in) >= 12 && !strings.Contains("certificate", string(in))
		for name, parse := range map[string]func([]byte) error{
			"decodeKey":         func(b []byte) error { _, err := decodeKey(b); return err },
			"decodeCert":        func(b []byte) error { _, err := decodeCert(b); return err },
			"unverifiedPayload": func(b []byte) error { _, err := unverifiedPayload(string(b)); return err },
		} {
			if err := parse(in); err != nil && secretish && strings.Contains(err.Error(), string(in)) {
				t.Fatalf("%s: the error quotes the input: %v", name, err)
			}
		}
	})
}
