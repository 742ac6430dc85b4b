package sealing

import (
	"errors"
	"sync"
	"testing"
	"time"
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

// FuzzParseKeyFile: never panics; every error is ErrKeyFile.
func FuzzParseKeyFile(f *testing.F) {
	for _, s := range suites {
		b, err := mustGenerate(f, s.kemID, testLater).MarshalFile()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"kem_id":32,"private_key":"","not_after":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseKeyFile(data); err != nil && !errors.Is(err, ErrKeyFile) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
