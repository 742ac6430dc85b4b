package sealing

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseClientKey(t *testing.T) {
	xw, _, err := NewClientKey(KEMXWing)
	if err != nil {
		t.Fatal(err)
	}
	x, _, err := NewClientKey(KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	obj := func(kem, kdf, aead any, pk any) string {
		return mustJSON(t, map[string]any{"kem_id": kem, "kdf_id": kdf, "aead_id": aead, "public_key": pk})
	}
	xwRaw, _ := b64.DecodeString(xw.PublicKey)
	// A low-order X25519 point: parses, but nothing can be encapsulated to it.
	zero := b64.EncodeToString(make([]byte, 32))
	lowOrderXWing := b64.EncodeToString(append(append([]byte{}, xwRaw[:1184]...), make([]byte, 32)...))

	good := []struct {
		name, raw string
	}{
		{"xwing", mustJSON(t, xw)},
		{"x25519", mustJSON(t, x)},
		{"member order and whitespace", " {\"public_key\": \"" + x.PublicKey + "\",\n \"aead_id\": 2, \"kdf_id\": 1, \"kem_id\": 32} \n"},
	}
	for _, c := range good {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseClientKey(c.raw); err != nil {
				t.Fatalf("ParseClientKey: %v", err)
			}
		})
	}

	bad := []struct {
		name      string
		raw       string
		unsupport bool // also ErrUnsupportedSuite
	}{
		{"empty", "", false},
		{"junk", "not json at all", false},
		{"array", `[1,2,3]`, false},
		{"string", `"kem_id"`, false},
		{"null", `null`, false},
		{"truncated", mustJSON(t, x)[:40], false},
		{"trailing object", mustJSON(t, x) + `{}`, false},
		{"trailing junk", mustJSON(t, x) + `x`, false},
		{"unknown member", strings.Replace(mustJSON(t, x), `{`, `{"kid":"k",`, 1), false},
		{"not_after member", strings.Replace(mustJSON(t, x), `{`, `{"not_after":"2030-01-01T00:00:00Z",`, 1), false},
		{"upper-case name", strings.Replace(mustJSON(t, x), `"kem_id"`, `"KEM_ID"`, 1), false},
		{"duplicate kem_id", strings.Replace(mustJSON(t, x), `{`, `{"kem_id":25722,`, 1), false},
		{"missing public_key", `{"kem_id":32,"kdf_id":1,"aead_id":2}`, false},
		{"missing aead_id", `{"kem_id":32,"kdf_id":1,"public_key":"` + x.PublicKey + `"}`, false},
		{"kem as string", obj("32", 1, 2, x.PublicKey), false},
		{"kem negative", strings.Replace(mustJSON(t, x), `"kem_id":32`, `"kem_id":-32`, 1), false},
		{"kem float", strings.Replace(mustJSON(t, x), `"kem_id":32`, `"kem_id":32.0`, 1), false},
		{"kem exponent", strings.Replace(mustJSON(t, x), `"kem_id":32`, `"kem_id":3.2e1`, 1), false},
		{"kem overflow", obj(65536+32, 1, 2, x.PublicKey), false},
		{"kem null", strings.Replace(mustJSON(t, x), `"kem_id":32`, `"kem_id":null`, 1), false},
		{"public key null", obj(32, 1, 2, nil), false},
		{"public key number", obj(32, 1, 2, 5), false},
		{"kem P-256", obj(0x10, 1, 2, x.PublicKey), true},
		{"kem ML-KEM-768", obj(0x41, 1, 2, xw.PublicKey), true},
		{"kem MLKEM768-P256", obj(0x50, 1, 2, xw.PublicKey), true},
		{"kem zero", obj(0, 1, 2, x.PublicKey), true},
		{"kdf SHA-384", obj(32, 2, 2, x.PublicKey), true},
		{"kdf SHAKE", obj(0x647a, 0x10, 2, xw.PublicKey), true},
		{"aead AES-128-GCM", obj(32, 1, 1, x.PublicKey), true},
		{"aead ChaCha20Poly1305", obj(0x647a, 1, 3, xw.PublicKey), true},
		{"aead export-only", obj(32, 1, 0xffff, x.PublicKey), true},
		{"x25519 key for xwing", obj(0x647a, 1, 2, x.PublicKey), false},
		{"xwing key for x25519", obj(32, 1, 2, xw.PublicKey), false},
		{"x25519 key short", obj(32, 1, 2, x.PublicKey[:42]), false},
		{"x25519 key 31 bytes", obj(32, 1, 2, b64.EncodeToString(make([]byte, 31))), false},
		{"x25519 key 33 bytes", obj(32, 1, 2, b64.EncodeToString(make([]byte, 33))), false},
		{"xwing key one byte short", obj(0x647a, 1, 2, b64.EncodeToString(xwRaw[:len(xwRaw)-1])), false},
		{"xwing key one byte long", obj(0x647a, 1, 2, b64.EncodeToString(append(xwRaw[:len(xwRaw):len(xwRaw)], 0))), false},
		{"xwing ML-KEM part not reduced", obj(0x647a, 1, 2, b64.EncodeToString(append(bytesOf(0xff, 1184), xwRaw[1184:]...))), false},
		{"x25519 low-order key", obj(32, 1, 2, zero), false},
		{"xwing low-order X25519 half", obj(0x647a, 1, 2, lowOrderXWing), false},
		{"public key padded", obj(32, 1, 2, base64.URLEncoding.EncodeToString(make([]byte, 32))), false},
		{"public key std alphabet", obj(32, 1, 2, strings.NewReplacer("-", "+", "_", "/").Replace(x.PublicKey)+"+/"), false},
		{"public key empty", obj(32, 1, 2, ""), false},
		{"5 KiB", `{"kem_id":32,"kdf_id":1,"aead_id":2,"public_key":"` + strings.Repeat("A", 5<<10) + `"}`, false},
		{"over the limit", strings.Repeat(" ", MaxClientKeyLen-len(mustJSON(t, x))+1) + mustJSON(t, x), false},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			k, err := ParseClientKey(c.raw)
			if !errors.Is(err, ErrClientKeyInvalid) {
				t.Fatalf("ParseClientKey = %+v, %v; want ErrClientKeyInvalid", k, err)
			}
			if got := errors.Is(err, ErrUnsupportedSuite); got != c.unsupport {
				t.Fatalf("errors.Is(%v, ErrUnsupportedSuite) = %v", err, got)
			}
			assertNoEcho(t, err, x.PublicKey, xw.PublicKey, xw.PublicKey[100:], zero, lowOrderXWing[1600:])
			if strings.Contains(err.Error(), "KEM_ID") || strings.Contains(err.Error(), `"kid"`) {
				t.Fatalf("error echoes a member name: %v", err)
			}
		})
	}
}

func bytesOf(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func TestSealToRefusesBadKeys(t *testing.T) {
	if _, err := SealTo(nil, nil, nil, []byte("x")); !errors.Is(err, ErrClientKeyInvalid) {
		t.Fatalf("nil key: %v", err)
	}
	x, _, _ := NewClientKey(KEMX25519)
	for name, k := range map[string]ClientKey{
		"wrong aead":   {KEMID: KEMX25519, KDFID: 1, AEADID: 1, PublicKey: x.PublicKey},
		"bad key":      {KEMID: KEMX25519, KDFID: 1, AEADID: 2, PublicKey: "AAAA"},
		"wrong kem id": {KEMID: KEMXWing, KDFID: 1, AEADID: 2, PublicKey: x.PublicKey},
	} {
		if _, err := SealTo(&k, nil, nil, []byte("x")); !errors.Is(err, ErrClientKeyInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A hand-made ClientKey with a low-order point fails with an error,
	// never a panic.
	low := ClientKey{KEMID: KEMX25519, KDFID: 1, AEADID: 2, PublicKey: b64.EncodeToString(make([]byte, 32))}
	if _, err := SealTo(&low, nil, nil, []byte("x")); err == nil {
		t.Fatal("sealed to a low-order point")
	}
}

func TestSealRefusesBadEntries(t *testing.T) {
	k := mustGenerate(t, KEMXWing, testLater)
	e := k.Public()
	for name, mut := range map[string]func(*PublicEntry){
		"kem":        func(e *PublicEntry) { e.KEMID = 0x41 },
		"kdf":        func(e *PublicEntry) { e.KDFID = 3 },
		"aead":       func(e *PublicEntry) { e.AEADID = 3 },
		"public key": func(e *PublicEntry) { e.PublicKey = e.PublicKey[:100] },
		"padded":     func(e *PublicEntry) { e.PublicKey += "==" },
	} {
		bad := e
		mut(&bad)
		if _, err := Seal(bad, nil, nil, []byte("123456")); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	if _, err := Seal(e, nil, nil, make([]byte, MaxSealedLen)); err == nil {
		t.Fatal("Seal produced a value the server refuses")
	}
	if _, _, err := NewClientKey(0x10); !errors.Is(err, ErrUnsupportedSuite) {
		t.Fatalf("NewClientKey P-256: %v", err)
	}
	var nilKey *ClientPrivateKey
	if _, err := nilKey.Open("AAAA", nil, nil); !errors.Is(err, ErrSealInvalid) {
		t.Fatalf("nil private key: %v", err)
	}
}
