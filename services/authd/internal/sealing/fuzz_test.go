package sealing

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

var (
	fuzzOnce sync.Once
	fuzzRing *Ring
	fuzzKeys []*Key
)

func fuzzSetup(f *testing.F) {
	fuzzOnce.Do(func() {
		for _, s := range suites {
			fuzzKeys = append(fuzzKeys, mustGenerate(f, s.kemID, testLater))
		}
		fuzzKeys = append(fuzzKeys, mustGenerate(f, KEMX25519, testNow.Add(-time.Hour)))
		fuzzRing = mustRing(f, fuzzKeys...)
	})
}

// FuzzOpen: Open never panics, never returns plaintext with an error, and
// every error is ErrSealInvalid or ErrUnknownKID (so it maps to a 400).
func FuzzOpen(f *testing.F) {
	fuzzSetup(f)
	info, aad := []byte(InfoPasscode), PasscodeAAD("dev", "jti")
	for _, k := range fuzzKeys {
		s, err := Seal(k.Public(), info, aad, []byte("123456"))
		if err != nil {
			f.Fatal(err)
		}
		for i := range fuzzKeys {
			f.Add(uint8(i), "", s, info, aad)
			f.Add(uint8(i), "", s[:len(s)/2], info, aad)
		}
		f.Add(uint8(255), k.KID, s, info, aad)
		f.Add(uint8(255), k.KID, s, info, []byte("dev.other"))
	}
	f.Add(uint8(255), "", "", []byte(nil), []byte(nil))
	f.Add(uint8(255), "x", "====", []byte("i"), []byte("a"))
	f.Add(uint8(1), "", b64.EncodeToString(make([]byte, 48)), info, aad) // all-zero X25519 share
	// pick < len(fuzzKeys) chooses a ring key, so most inputs reach the
	// decoding and decryption paths; otherwise kid is used as given.
	f.Fuzz(func(t *testing.T, pick uint8, kid, sealed string, info, aad []byte) {
		if int(pick) < len(fuzzKeys) {
			kid = fuzzKeys[pick].KID
		}
		pt, err := fuzzRing.Open(kid, sealed, info, aad, testNow)
		if err == nil {
			return // a fuzzer that forges a seal has found a bigger problem; the round trip tests cover success
		}
		if pt != nil {
			t.Fatalf("plaintext with error %v", err)
		}
		if !errors.Is(err, ErrSealInvalid) && !errors.Is(err, ErrUnknownKID) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}

// FuzzParseClientKey: never panics; every error is ErrClientKeyInvalid,
// and every accepted key can be sealed to.
func FuzzParseClientKey(f *testing.F) {
	for _, s := range suites {
		k, _, err := NewClientKey(s.kemID)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(mustJSON(f, k))
	}
	f.Add(`{"kem_id":32,"kdf_id":1,"aead_id":2,"public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`)
	f.Add(`{}`)
	f.Add(`{"kem_id":1e2}`)
	f.Fuzz(func(t *testing.T, raw string) {
		k, err := ParseClientKey(raw)
		if err != nil {
			if !errors.Is(err, ErrClientKeyInvalid) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		if _, err := SealTo(k, nil, nil, []byte("x")); err != nil {
			t.Fatalf("accepted key cannot be sealed to: %v", err)
		}
	})
}

// FuzzMountKeySet: Mount on any keys.json never panics; every error
// wraps ErrKeyFile and, when the file's keys parse, contains none of
// their private keys; and every ring it mounts lists each key at its
// not_before and opens what is sealed to it there.
func FuzzMountKeySet(f *testing.F) {
	nb, na := testNow.Add(-time.Hour), testLater
	xw := newKeySetKey(f, keyset.XWing, nb, na)
	x := newKeySetKey(f, keyset.X25519, nb.Add(time.Hour), na)
	good := sealingSet(f, xw, x)
	f.Add(good)
	f.Add(sealingSet(f, x))
	f.Add(sealingSet(f))
	f.Add(bytes.Replace(good, []byte(`"payload-sealing"`), []byte(`"token-signing"`), 1))
	f.Add(bytes.Replace(good, []byte(`"1h0m0s"`), []byte(`"59m0s"`), 1))
	f.Add(bytes.Replace(good, []byte(xw.KID), []byte(x.KID), 1))
	f.Add(bytes.Replace(good, []byte(`"`+keyset.XWing+`"`), []byte(`"`+keyset.X25519+`"`), 1))
	f.Add([]byte(`{"purpose":"payload-sealing","publish_ahead":"1h","protected_lifetime":"1h","keys":[{"kid":"","algorithm":"DHKEM-X25519","not_before":"2026-01-01T00:00:00.5Z","not_after":"2026-01-01T00:00:00.9Z","private_key":""}]}`))
	f.Add([]byte(`{}`))
	dir := f.TempDir() // inputs run one at a time in a process
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, keyset.FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Mount(dir, time.Hour, mounted.Options{Now: func() time.Time { return testNow }})
		if err != nil {
			if r != nil || !errors.Is(err, ErrKeyFile) {
				t.Fatalf("Mount = %v, %v; want ErrKeyFile", r, err)
			}
			if file, perr := keyset.Parse(data); perr == nil {
				for _, k := range file.Keys {
					assertNoSecret(t, err.Error(), k.PrivateKey)
				}
			}
			return
		}
		st := r.load()
		if len(st.keys) == 0 {
			t.Fatal("mounted a ring without keys")
		}
		for _, k := range st.keys[:min(len(st.keys), 3)] {
			if !slices.Contains(kidsOf(r.KeysAt(k.NotBefore)), k.KID) {
				t.Fatalf("%v not listed at its not_before", k)
			}
			sealed, err := Seal(k.Public(), nil, nil, []byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Open(k.KID, sealed, nil, nil, k.NotBefore); err != nil {
				t.Fatalf("%v does not open: %v", k, err)
			}
		}
	})
}
