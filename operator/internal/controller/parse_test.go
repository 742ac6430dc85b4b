package controller

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
)

// FuzzParsers feeds hostile bytes to everything the controller parses out
// of Secrets and ConfigMaps (someone may edit them by hand): nothing
// panics, and an error never quotes the input (it may hold a key). The
// KeySet controller parses only keys.json, with keyset.Parse, and puts its
// errors into the KeySet's condition and events: they must never carry a
// private_key.
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
	for _, alg := range []string{keyset.ES256, keyset.XWing, keyset.HS256} {
		priv, kid, err := keyset.Generate(alg)
		if err != nil {
			f.Fatal(err)
		}
		purpose := map[string]string{keyset.ES256: keyset.PurposeTokenSigning, keyset.XWing: keyset.PurposePayloadSealing, keyset.HS256: keyset.PurposeHMACSecret}[alg]
		file := keyset.File{Purpose: purpose, PublishAhead: keyset.Duration(time.Hour), ProtectedLifetime: keyset.Duration(time.Hour),
			Keys: []keyset.Key{{KID: kid, Algorithm: alg, NotBefore: start, NotAfter: start.Add(time.Hour), PrivateKey: priv}}}
		good, err := file.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(good)
		f.Add([]byte(strings.Replace(string(good), `"kid": "`, `"kid": "x`, 1)))             // the kid does not match
		f.Add([]byte(strings.Replace(string(good), purpose, keyset.PurposeTokenSigning, 1))) // another purpose
		f.Add([]byte(strings.Replace(string(good), `"private_key": "`, `"private_key": "=`, 1)))
		f.Add(good[:len(good)/2])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		secretish := len(in) >= 12 && !strings.Contains("certificate", string(in))
		for name, parse := range map[string]func([]byte) error{
			"decodeKey":         func(b []byte) error { _, err := decodeKey(b); return err },
			"decodeCert":        func(b []byte) error { _, err := decodeCert(b); return err },
			"unverifiedPayload": func(b []byte) error { _, err := unverifiedPayload(string(b)); return err },
			"keyset.Parse":      func(b []byte) error { _, err := keyset.Parse(b); return err },
		} {
			if err := parse(in); err != nil && secretish && strings.Contains(err.Error(), string(in)) {
				t.Fatalf("%s: the error quotes the input: %v", name, err)
			}
		}
		// Whatever private_key strings the input holds stay out of the
		// error of keyset.Parse.
		_, err := keyset.Parse(in)
		if err == nil {
			return
		}
		var loose struct {
			Keys []struct {
				PrivateKey any `json:"private_key"`
			} `json:"keys"`
		}
		if json.Unmarshal(in, &loose) != nil {
			return
		}
		for _, k := range loose.Keys {
			if p, ok := k.PrivateKey.(string); ok && len(p) >= 8 && strings.Contains(err.Error(), p) {
				t.Fatalf("keyset.Parse: the error quotes a private_key: %v", err)
			}
		}
	})
}
