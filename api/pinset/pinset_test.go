package pinset

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

func set(version int64) Set {
	return Set{Version: version, IssuedAt: now, ExpiresAt: now.Add(30 * 24 * time.Hour), Pins: []Pin{
		{SHA256: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", Role: "current", NotBefore: now, NotAfter: now.Add(90 * 24 * time.Hour)},
		{SHA256: "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=", Role: "next", NotBefore: now.Add(60 * 24 * time.Hour)},
	}}
}

func TestSignVerify(t *testing.T) {
	m1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	m2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	manifest := map[string]*ecdsa.PublicKey{"m1": &m1.PublicKey, "m2": &m2.PublicKey}

	jws, err := Sign(set(7), m2, "m2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(jws, manifest, 7, now)
	if err != nil || got.Version != 7 || len(got.Pins) != 2 || got.Pins[1].Role != "next" {
		t.Fatalf("verify: %+v, %v", got, err)
	}

	parts := strings.Split(jws, ".")
	forged, _ := Sign(set(8), other, "m1") // the right kid, another key
	b64 := base64.RawURLEncoding.EncodeToString
	cases := []struct {
		name string
		jws  string
		held int64
		at   time.Time
		want error
	}{
		{"older than held", jws, 8, now, ErrRollback},
		{"expired", jws, 0, now.Add(31 * 24 * time.Hour), ErrExpired},
		{"signed by a key that is not a manifest key", forged, 0, now, ErrInvalid},
		{"unknown kid", mustSign(t, set(8), m1, "m9"), 0, now, ErrInvalid},
		{"payload changed", parts[0] + "." + b64([]byte(`{"version":99,"pins":[{"sha256":"x"}]}`)) + "." + parts[2], 0, now, ErrInvalid},
		{"alg none", b64([]byte(`{"alg":"none","kid":"m2"}`)) + "." + parts[1] + ".", 0, now, ErrInvalid},
		{"alg HS256", b64([]byte(`{"alg":"HS256","kid":"m2"}`)) + "." + parts[1] + "." + parts[2], 0, now, ErrInvalid},
		{"signature truncated", parts[0] + "." + parts[1] + "." + parts[2][:40], 0, now, ErrInvalid},
		{"two parts", parts[0] + "." + parts[1], 0, now, ErrInvalid},
		{"JSON serialization", `{"payload":"` + parts[1] + `","signatures":[]}`, 0, now, ErrInvalid},
		{"empty", "", 0, now, ErrInvalid},
		{"huge", strings.Repeat("a", 70<<10), 0, now, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Verify(c.jws, manifest, c.held, c.at); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func mustSign(t *testing.T, s Set, k *ecdsa.PrivateKey, kid string) string {
	t.Helper()
	jws, err := Sign(s, k, kid)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

func TestSignRefuses(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	empty := set(1)
	empty.Pins = nil
	for name, f := range map[string]func() (string, error){
		"P-384 key": func() (string, error) { return Sign(set(1), p384, "m") },
		"RSA key":   func() (string, error) { return Sign(set(1), rsaKey, "m") },
		"no kid":    func() (string, error) { return Sign(set(1), p256, "") },
		"version 0": func() (string, error) { return Sign(set(0), p256, "m") },
		"no pins":   func() (string, error) { return Sign(empty, p256, "m") },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
}

func TestAndroid(t *testing.T) {
	out, err := Android(set(3))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		XMLName    xml.Name `xml:"pin-set"`
		Expiration string   `xml:"expiration,attr"`
		Pins       []struct {
			Digest string `xml:"digest,attr"`
			Value  string `xml:",chardata"`
		} `xml:"pin"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Expiration != "2027-03-31" || len(doc.Pins) != 2 || doc.Pins[0].Digest != "SHA-256" || doc.Pins[1].Value != set(3).Pins[1].SHA256 {
		t.Fatalf("android pin set:\n%s", out)
	}
}

func FuzzVerify(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := Sign(set(2), k, "m")
	f.Add(good)
	f.Add("a.b.c")
	manifest := map[string]*ecdsa.PublicKey{"m": &k.PublicKey}
	f.Fuzz(func(t *testing.T, jws string) {
		s, err := Verify(jws, manifest, 0, now)
		if err == nil && jws != good && strings.TrimSpace(jws) != good {
			// Only the genuine pin set verifies (go-jose accepts no other
			// serialization of it).
			t.Fatalf("verified %q as %+v", jws, s)
		}
	})
}
