package keyset

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func mustKey(t testing.TB, alg string, nb, na time.Time) Key {
	t.Helper()
	priv, kid, err := Generate(alg)
	if err != nil {
		t.Fatal(err)
	}
	return Key{KID: kid, Algorithm: alg, NotBefore: nb, NotAfter: na, PrivateKey: priv}
}

func TestGenerateAndKIDAgree(t *testing.T) {
	for _, alg := range []string{ES256, XWing, X25519, HS256} {
		t.Run(alg, func(t *testing.T) {
			priv, kid, err := Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			again, err := KID(alg, priv)
			if err != nil || again != kid {
				t.Fatalf("KID = %q, %v; Generate said %q", again, err, kid)
			}
			if _, kid2, _ := Generate(alg); kid2 == kid {
				t.Fatal("two generated keys share a kid")
			}
		})
	}
}

// The kids are the ones the contract publishes: the JWKS kid is the
// RFC 7638 thumbprint, computed here by hand from the key's coordinates;
// the sealing kid is SHA-256(kem_id ‖ public key)[:16] of the KEM's own
// public key.
func TestKIDsAreTheContractsKids(t *testing.T) {
	priv, kid, err := Generate(ES256)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.(*ecdsa.PrivateKey).PublicKey
	point, _ := pub.Bytes()
	enc := base64.RawURLEncoding
	canonical := `{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(point[1:33]) + `","y":"` + enc.EncodeToString(point[33:]) + `"}`
	if want := thumb(canonical); kid != want {
		t.Fatalf("ES256 kid %q, RFC 7638 thumbprint %q", kid, want)
	}

	for alg, kem := range map[string]hpke.KEM{XWing: hpke.MLKEM768X25519(), X25519: hpke.DHKEM(ecdh.X25519())} {
		priv, kid, err := Generate(alg)
		if err != nil {
			t.Fatal(err)
		}
		sk, err := kem.NewPrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		if want := SealingKID(kem.ID(), sk.PublicKey().Bytes()); kid != want {
			t.Fatalf("%s kid %q, want %q", alg, kid, want)
		}
		if KEMID(alg) != kem.ID() {
			t.Fatalf("KEMID(%s) = %#x, want %#x", alg, KEMID(alg), kem.ID())
		}
	}
}

func thumb(canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func TestRoundTrip(t *testing.T) {
	f := &File{Purpose: PurposePayloadSealing, PublishAhead: Duration(24 * time.Hour), ProtectedLifetime: Duration(10 * time.Minute), Keys: []Key{
		mustKey(t, XWing, t0.Add(time.Hour), t0.Add(3*time.Hour)),
		mustKey(t, X25519, t0, t0.Add(2*time.Hour)),
	}}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if g.Purpose != f.Purpose || g.PublishAhead != f.PublishAhead || g.ProtectedLifetime != f.ProtectedLifetime || len(g.Keys) != 2 {
		t.Fatalf("round trip changed the file: %+v", g)
	}
	// Sorted by not_before, so equal sets are equal bytes.
	if g.Keys[0].KID != f.Keys[1].KID || !bytes.Equal(g.Keys[0].PrivateKey, f.Keys[1].PrivateKey) {
		t.Fatal("keys not sorted by not_before or altered")
	}
	b2, _ := g.Marshal()
	if !bytes.Equal(b, b2) {
		t.Fatal("marshal is not deterministic")
	}
}

func TestActiveAndPublished(t *testing.T) {
	a := mustKey(t, HS256, t0, t0.Add(3*time.Hour))                  // active 0h..2h, kept to 3h
	b := mustKey(t, HS256, t0.Add(2*time.Hour), t0.Add(5*time.Hour)) // published from the start
	f := &File{Purpose: PurposeHMACSecret, Keys: []Key{b, a}}
	for _, tc := range []struct {
		at        time.Duration
		active    string
		published int
	}{
		{-time.Minute, "", 2},
		{0, a.KID, 2},
		{2*time.Hour - time.Nanosecond, a.KID, 2},
		{2 * time.Hour, b.KID, 2}, // every reader switches at the same instant
		{3 * time.Hour, b.KID, 1}, // a retired: not_after is exclusive
		{5 * time.Hour, "", 0},
	} {
		k, ok := f.Active(t0.Add(tc.at))
		if (tc.active == "") == ok || (ok && k.KID != tc.active) {
			t.Errorf("at %v: active %v %q, want %q", tc.at, ok, k.KID, tc.active)
		}
		if n := len(f.Published(t0.Add(tc.at))); n != tc.published {
			t.Errorf("at %v: %d published, want %d", tc.at, n, tc.published)
		}
	}
	// Order: the active key first, then the latest not_before first.
	c0 := mustKey(t, HS256, t0.Add(-time.Hour), t0.Add(4*time.Hour)) // kept, active before a
	d := mustKey(t, HS256, t0.Add(4*time.Hour), t0.Add(9*time.Hour)) // published after b
	g := &File{Purpose: PurposeHMACSecret, Keys: []Key{d, c0, a, b}}
	var order []string
	for _, k := range g.Published(t0.Add(time.Hour)) {
		order = append(order, k.KID)
	}
	if want := []string{a.KID, d.KID, b.KID, c0.KID}; strings.Join(order, ",") != strings.Join(want, ",") {
		t.Errorf("published in order %v, want %v", order, want)
	}
	// Equal not_before: both readers pick the same key whatever the order.
	c := mustKey(t, HS256, t0, t0.Add(time.Hour))
	x, _ := (&File{Keys: []Key{a, c}}).Active(t0)
	y, _ := (&File{Keys: []Key{c, a}}).Active(t0)
	if x.KID != y.KID {
		t.Fatal("tie broken by order")
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	k := mustKey(t, HS256, t0, t0.Add(time.Hour))
	f := &File{Purpose: PurposeHMACSecret, Keys: []Key{k}}
	secret := base64.RawURLEncoding.EncodeToString(k.PrivateKey)
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s %x %q", k, k, k, k, k.PrivateKey, k.PrivateKey),
		fmt.Sprintf("%+v %#v", f, f), fmt.Sprintf("%x %X %d", k.PrivateKey, k.PrivateKey, k.PrivateKey),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", []byte(k.PrivateKey))) {
			t.Fatalf("private key printed: %s", s)
		}
	}
}

// Hostile and broken files are refused with an error that quotes no key.
func TestParseRefuses(t *testing.T) {
	good := mustKey(t, ES256, t0, t0.Add(time.Hour))
	other := mustKey(t, ES256, t0, t0.Add(time.Hour))
	hs := mustKey(t, HS256, t0, t0.Add(time.Hour))
	enc := func(f any) string {
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	file := func(purpose string, keys ...Key) string {
		return enc(File{Purpose: purpose, Keys: keys})
	}
	swapped := good
	swapped.KID = other.KID
	inverted := good
	inverted.NotBefore, inverted.NotAfter = good.NotAfter, good.NotBefore
	empty := good
	empty.NotAfter = good.NotBefore
	zero := good
	zero.NotBefore = time.Time{}
	shortHMAC := hs
	shortHMAC.PrivateKey = hs.PrivateKey[:16]
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	wrongCurve := good
	wrongCurve.PrivateKey = p384der
	badX := mustKey(t, X25519, t0, t0.Add(time.Hour))
	badX.PrivateKey = badX.PrivateKey[:31]

	for name, in := range map[string]string{
		"empty":               "",
		"not json":            "{",
		"array":               "[]",
		"two documents":       file(PurposeTokenSigning, good) + file(PurposeTokenSigning, good),
		"unknown member":      `{"purpose":"token-signing","keys":[],"extra":1}`,
		"unknown key member":  strings.Replace(file(PurposeTokenSigning, good), `"kid"`, `"active":true,"kid"`, 1),
		"unknown purpose":     file("signing", good),
		"no purpose":          `{"keys":[]}`,
		"alg of other use":    file(PurposeHMACSecret, good),
		"unknown alg":         strings.Replace(file(PurposeTokenSigning, good), `"ES256"`, `"none"`, 1),
		"kid of another key":  file(PurposeTokenSigning, swapped),
		"same key twice":      file(PurposeTokenSigning, good, good),
		"inverted window":     file(PurposeTokenSigning, inverted),
		"empty window":        file(PurposeTokenSigning, empty),
		"no not_before":       file(PurposeTokenSigning, zero),
		"short hmac":          file(PurposeHMACSecret, shortHMAC),
		"P-384 for ES256":     file(PurposeTokenSigning, wrongCurve),
		"short x25519":        file(PurposePayloadSealing, badX),
		"padded private key":  strings.Replace(file(PurposeHMACSecret, hs), `"private_key":"`+base64.RawURLEncoding.EncodeToString(hs.PrivateKey), `"private_key":"`+base64.URLEncoding.EncodeToString(hs.PrivateKey), 1),
		"line break in key":   strings.Replace(file(PurposeHMACSecret, hs), `"private_key":"`+base64.RawURLEncoding.EncodeToString(hs.PrivateKey)[:8], `"private_key":"`+base64.RawURLEncoding.EncodeToString(hs.PrivateKey)[:8]+`\n`, 1),
		"std base64 key":      strings.Replace(file(PurposeHMACSecret, hs), `"private_key":"`, `"private_key":"+/`, 1),
		"private key number":  strings.Replace(file(PurposeHMACSecret, hs), `"private_key":"`+base64.RawURLEncoding.EncodeToString(hs.PrivateKey)+`"`, `"private_key":7`, 1),
		"negative lifetime":   `{"purpose":"hmac-secret","protected_lifetime":"-1h","keys":[]}`,
		"lifetime as number":  `{"purpose":"hmac-secret","protected_lifetime":3600,"keys":[]}`,
		"too large":           `{"purpose":"hmac-secret","keys":[]}` + strings.Repeat(" ", MaxFileSize),
		"kid null":            strings.Replace(file(PurposeTokenSigning, good), `"kid":"`+good.KID+`"`, `"kid":null`, 1),
		"trailing garbage":    file(PurposeTokenSigning, good) + "x",
		"not_before not time": strings.Replace(file(PurposeTokenSigning, good), `"not_before":"`, `"not_before":"x`, 1),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(in))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, k := range []Key{good, other, hs} {
				if strings.Contains(err.Error(), base64.RawURLEncoding.EncodeToString(k.PrivateKey)[:16]) {
					t.Fatalf("error quotes key material: %v", err)
				}
			}
		})
	}
	if _, err := Parse([]byte(file(PurposeTokenSigning, good))); err != nil {
		t.Fatalf("the good file is refused: %v", err)
	}
}

// FuzzParse: any input either is refused or parses into a file that
// passes Check and marshals to bytes that parse to the same file.
func FuzzParse(f *testing.F) {
	k, _, _ := Generate(HS256)
	kid, _ := KID(HS256, k)
	good, _ := (&File{Purpose: PurposeHMACSecret, Keys: []Key{{KID: kid, Algorithm: HS256, NotBefore: t0, NotAfter: t0.Add(time.Hour), PrivateKey: k}}}).Marshal()
	f.Add(good)
	f.Add([]byte(`{"purpose":"token-signing","keys":[]}`))
	f.Add([]byte(`{"purpose":"hmac-secret","publish_ahead":"1h","protected_lifetime":"24h","keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		if err := file.Check(); err != nil {
			t.Fatalf("parsed file fails Check: %v", err)
		}
		out, err := file.Marshal()
		if err != nil {
			t.Fatalf("parsed file does not marshal: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("marshalled file does not parse: %v", err)
		}
		if len(again.Keys) != len(file.Keys) || again.Purpose != file.Purpose {
			t.Fatal("round trip changed the file")
		}
	})
}
