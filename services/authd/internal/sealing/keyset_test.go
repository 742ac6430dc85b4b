package sealing

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

// TestKeysFromKeySet checks sealing's own rules on a KeySet, which a file
// that keyset.Parse accepted meets anyway: a hand-built File reaches them.
func TestKeysFromKeySet(t *testing.T) {
	nb, na := testNow.Add(-time.Hour), testLater
	xw := newKeySetKey(t, keyset.XWing, nb, na)
	x := newKeySetKey(t, keyset.X25519, nb, na)
	secrets := [][]byte{xw.PrivateKey, x.PrivateKey}
	with := func(k keyset.Key, change func(*keyset.Key)) keyset.Key {
		k.PrivateKey = slices.Clone(k.PrivateKey)
		change(&k)
		return k
	}
	file := func(keys ...keyset.Key) *keyset.File {
		return &keyset.File{Purpose: keyset.PurposePayloadSealing, Keys: keys}
	}
	xwPub, err := suiteXWing.kem.NewPrivateKey(xw.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}

	keys, err := KeysFromKeySet(file(xw, x))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []keyset.Key{xw, x} {
		k := keys[i]
		if k.KID != want.KID || !k.NotBefore.Equal(nb) || !k.NotAfter.Equal(na) || k.KEMID != keyset.KEMID(want.Algorithm) {
			t.Fatalf("key %d = %v, want %v", i, k, want)
		}
	}

	cases := []struct {
		name string
		f    *keyset.File
		also error
	}{
		{"nil file", nil, nil},
		{"other purpose", &keyset.File{Purpose: keyset.PurposeTokenSigning, Keys: []keyset.Key{xw}}, nil},
		{"no purpose", &keyset.File{Keys: []keyset.Key{xw}}, nil},
		{"no keys", file(), ErrNoKeys},
		{"too many keys", file(slices.Repeat([]keyset.Key{xw}, keyset.MaxKeys+1)...), nil},
		{"ES256", file(with(xw, func(k *keyset.Key) { k.Algorithm = keyset.ES256 })), nil},
		{"no algorithm", file(with(xw, func(k *keyset.Key) { k.Algorithm = "" })), nil},
		{"algorithm of the other KEM", file(with(x, func(k *keyset.Key) { k.Algorithm = keyset.XWing })), nil},
		{"kid of the same public key under the other KEM", file(with(xw, func(k *keyset.Key) {
			k.KID = keyset.SealingKID(KEMX25519, xwPub.PublicKey().Bytes())
		})), nil},
		{"kid of another key", file(with(xw, func(k *keyset.Key) { k.KID = x.KID })), nil},
		{"no kid", file(with(xw, func(k *keyset.Key) { k.KID = "" })), nil},
		{"no private key", file(with(xw, func(k *keyset.Key) { k.PrivateKey = nil })), nil},
		{"31-byte key", file(with(xw, func(k *keyset.Key) { k.PrivateKey = k.PrivateKey[:31] })), nil},
		{"33-byte key", file(with(x, func(k *keyset.Key) { k.PrivateKey = append(k.PrivateKey, 1) })), nil},
		{"expanded ML-KEM key", file(with(xw, func(k *keyset.Key) { k.PrivateKey = bytes.Repeat(k.PrivateKey, 75) })), nil},
		{"no not_before", file(with(xw, func(k *keyset.Key) { k.NotBefore = time.Time{} })), nil},
		{"no not_after", file(with(xw, func(k *keyset.Key) { k.NotAfter = time.Time{} })), nil},
		{"empty window", file(with(xw, func(k *keyset.Key) { k.NotBefore = k.NotAfter })), nil},
		{"reversed window", file(with(xw, func(k *keyset.Key) { k.NotBefore, k.NotAfter = k.NotAfter, k.NotBefore })), nil},
		{"window within one second", file(with(xw, func(k *keyset.Key) {
			k.NotBefore, k.NotAfter = testNow.Add(200*time.Millisecond), testNow.Add(700*time.Millisecond)
		})), nil},
		{"same key twice", file(xw, x, xw), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			keys, err := KeysFromKeySet(c.f)
			if !errors.Is(err, ErrKeyFile) || keys != nil {
				t.Fatalf("KeysFromKeySet = %v, %v; want ErrKeyFile", keys, err)
			}
			if c.also != nil && !errors.Is(err, c.also) {
				t.Fatalf("error %v; want also %v", err, c.also)
			}
			assertNoSecret(t, err.Error(), secrets...)
		})
	}

	t.Run("unclamped X25519 scalar", func(t *testing.T) {
		// RFC 9180 §7.1.2: DeserializePrivateKey clamps; an unclamped scalar
		// loads as the same key as its clamped form, which KeySetKey writes.
		raw := bytes.Repeat([]byte{0xff}, 32)
		kid, err := keyset.KID(keyset.X25519, raw)
		if err != nil {
			t.Fatal(err)
		}
		a, err := KeysFromKeySet(file(keyset.Key{KID: kid, Algorithm: keyset.X25519, NotBefore: nb, NotAfter: na, PrivateKey: raw}))
		if err != nil {
			t.Fatal(err)
		}
		fk, err := a[0].KeySetKey()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(fk.PrivateKey, raw) || fk.PrivateKey[0]&7 != 0 || fk.PrivateKey[31]&0xc0 != 0x40 {
			t.Fatal("KeySetKey does not write the clamped scalar")
		}
		b, err := KeysFromKeySet(file(fk))
		if err != nil || b[0].Public() != a[0].Public() {
			t.Fatalf("clamped round trip: %v", err)
		}
	})
}

func TestKeySetKey(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			k := mustGenerate(t, s.kemID, testLater)
			if _, err := k.KeySetKey(); err == nil {
				t.Fatal("KeySetKey without NotBefore accepted")
			}
			k.NotBefore = testLater
			if _, err := k.KeySetKey(); err == nil {
				t.Fatal("KeySetKey with NotBefore = NotAfter accepted")
			}
			k.NotBefore = testNow
			fk, err := k.KeySetKey()
			if err != nil {
				t.Fatal(err)
			}
			if fk.KID != k.KID || fk.Algorithm != k.suite.algorithm || keyset.KEMID(fk.Algorithm) != s.kemID ||
				!fk.NotBefore.Equal(testNow) || !fk.NotAfter.Equal(testLater) || len(fk.PrivateKey) != 32 {
				t.Fatalf("KeySetKey = %v", fk)
			}
			// The operator's file format takes it, and it reads back as k.
			data := sealingSet(t, fk)
			r := mustMount(t, newKubeMount(t, data).dir, mounted.Options{})
			if got := r.KeysAt(testNow); len(got) != 1 || got[0] != k.Public() {
				t.Fatalf("mounted %+v, want %+v", got, k.Public())
			}
			// Printing keeps the private key out.
			assertNoSecret(t, fk.String()+fk.GoString(), fk.PrivateKey)
		})
	}
	if _, err := (&Key{KID: "x", KEMID: KEMXWing, KDFID: 1, AEADID: 2, NotAfter: testLater}).KeySetKey(); err == nil {
		t.Fatal("hand-made Key accepted")
	}
}

// TestKnownAnswers pins the KeySet's private_key to published test
// vectors: it is exactly the skRm of RFC 9180 (DHKEM(X25519)) and of
// draft-ietf-hpke-pq (the X-Wing 32-byte seed), the published public_key
// is their pkRm, and the kid both sides derive is that of pkRm.
func TestKnownAnswers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "kat.json"))
	if err != nil {
		t.Fatal(err)
	}
	type vector struct {
		KEMID uint16 `json:"kem_id"`
		KDFID uint16 `json:"kdf_id"`
		AEAD  uint16 `json:"aead_id"`
		SkRm  string `json:"skRm"`
		PkRm  string `json:"pkRm"`
		Info  string `json:"info"`
		Enc   string `json:"enc"`
		AAD   string `json:"aad"`
		CT    string `json:"ct"`
		PT    string `json:"pt"`
	}
	var file struct {
		XWing  *vector `json:"xwing"`
		X25519 *vector `json:"x25519"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for name, c := range map[string]struct {
		v         *vector
		algorithm string
	}{"xwing": {file.XWing, keyset.XWing}, "x25519": {file.X25519, keyset.X25519}} {
		v := c.v
		if v == nil {
			t.Fatalf("no %s vector", name)
		}
		if keyset.KEMID(c.algorithm) != v.KEMID {
			t.Fatalf("%s: algorithm %s is not kem %d", name, c.algorithm, v.KEMID)
		}
		// kid = base64url(SHA-256(kem_id ‖ pkRm)[:16]), computed from the
		// vector's public key, not from anything this package loaded.
		kid := kidFor(v.KEMID, unhex(v.PkRm))
		if opKID, err := keyset.KID(c.algorithm, unhex(v.SkRm)); err != nil || opKID != kid {
			t.Fatalf("%s: the operator derives kid %s (%v), want %s", name, opKID, err, kid)
		}
		keysJSON := sealingSet(t, keyset.Key{
			KID: kid, Algorithm: c.algorithm, NotBefore: testNow, NotAfter: testLater, PrivateKey: unhex(v.SkRm),
		})
		r := mustMount(t, newKubeMount(t, keysJSON).dir, mounted.Options{})
		pub := r.KeysAt(testNow)
		if len(pub) != 1 || pub[0].KID != kid || pub[0].KEMID != v.KEMID {
			t.Fatalf("%s: published %+v", name, pub)
		}
		if got, want := pub[0].PublicKey, b64.EncodeToString(unhex(v.PkRm)); got != want {
			t.Fatalf("%s: public key from skRm differs from pkRm", name)
		}
		// KeySetKey gives back SerializePrivateKey(skRm): the X-Wing seed
		// itself, and for X25519 the scalar clamped as RFC 9180 §7.1.2 asks
		// (the RFC's skRm are unclamped DeriveKeyPair outputs).
		wantSk := unhex(v.SkRm)
		if v.KEMID == KEMX25519 {
			wantSk[0] &= 248
			wantSk[31] &= 127
			wantSk[31] |= 64
		}
		k := r.load().byKID[kid]
		fk, err := k.KeySetKey()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fk.PrivateKey, wantSk) {
			t.Fatalf("%s: KeySetKey does not give the serialized skRm", name)
		}
		if v.Enc == "" {
			continue
		}
		// The vector's AEAD (ChaCha20Poly1305) is not one we accept, so
		// check decapsulation with the mounted key through hpke directly.
		kdf, aead := mustKDF(t, v.KDFID), mustAEAD(t, v.AEAD)
		rcp, err := newRecipientForTest(unhex(v.Enc), k, kdf, aead, unhex(v.Info))
		if err != nil {
			t.Fatalf("%s: decapsulate vector: %v", name, err)
		}
		pt, err := rcp.Open(unhex(v.AAD), unhex(v.CT))
		if err != nil || !bytes.Equal(pt, unhex(v.PT)) {
			t.Fatalf("%s: vector does not open: %v", name, err)
		}
	}
}
