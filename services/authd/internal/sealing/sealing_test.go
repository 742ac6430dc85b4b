package sealing

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
)

var (
	testNow   = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	testLater = testNow.Add(90 * 24 * time.Hour)
)

var suites = []struct {
	name  string
	kemID uint16
}{
	{"xwing", KEMXWing},
	{"x25519", KEMX25519},
}

func mustGenerate(t testing.TB, kemID uint16, notAfter time.Time) *Key {
	t.Helper()
	k, err := Generate(kemID, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t testing.TB, keys ...*Key) *Ring {
	t.Helper()
	r, err := NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func entryFor(t testing.TB, r *Ring, kid string) PublicEntry {
	t.Helper()
	for _, e := range r.KeysAt(testNow) {
		if e.KID == kid {
			return e
		}
	}
	t.Fatalf("kid %s not published", kid)
	return PublicEntry{}
}

func TestPasscodeAAD(t *testing.T) {
	if got := string(PasscodeAAD("dev-1", "jti-9")); got != "dev-1.jti-9" {
		t.Fatalf("PasscodeAAD = %q", got)
	}
	if got := string(PasscodeAAD("", "")); got != "." {
		t.Fatalf("PasscodeAAD empty = %q", got)
	}
}

func TestRoundTripServer(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			k := mustGenerate(t, s.kemID, testLater)
			r := mustRing(t, k)
			e := entryFor(t, r, k.KID)
			if e.KEMID != s.kemID || e.KDFID != KDFHKDFSHA256 || e.AEADID != AEADAES256GCM {
				t.Fatalf("entry suite = %x/%x/%x", e.KEMID, e.KDFID, e.AEADID)
			}
			for _, pt := range [][]byte{[]byte("123456"), {}, bytes.Repeat([]byte("9"), 1000)} {
				aad := PasscodeAAD("dev-1", "jti-1")
				sealed, err := Seal(e, []byte(InfoPasscode), aad, pt)
				if err != nil {
					t.Fatal(err)
				}
				if strings.ContainsAny(sealed, "=+/") {
					t.Fatalf("sealed value is not unpadded base64url")
				}
				got, err := r.Open(k.KID, sealed, []byte(InfoPasscode), aad, testNow)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("Open = %q, want %q", got, pt)
				}
			}
		})
	}
}

func TestRoundTripClient(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			pub, priv, err := NewClientKey(s.kemID)
			if err != nil {
				t.Fatal(err)
			}
			// Over the wire as the form parameter.
			raw := mustJSON(t, pub)
			ck, err := ParseClientKey(raw)
			if err != nil {
				t.Fatalf("ParseClientKey(NewClientKey's key): %v", err)
			}
			if *ck != *pub {
				t.Fatalf("parsed %+v, want %+v", ck, pub)
			}
			body := []byte(`{"access_token":"x","token_type":"DPoP","expires_in":300}`)
			sealed, err := SealTo(ck, []byte(InfoTokenResponse), []byte("jti-7"), body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := priv.Open(sealed, []byte(InfoTokenResponse), []byte("jti-7"))
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("Open = %q, %v", got, err)
			}
			if _, err := priv.Open(sealed, []byte(InfoTokenResponse), []byte("jti-8")); !errors.Is(err, ErrSealInvalid) {
				t.Fatalf("other jti: %v", err)
			}
			if _, err := priv.Open(sealed, []byte(InfoPasscode), []byte("jti-7")); !errors.Is(err, ErrSealInvalid) {
				t.Fatalf("other info: %v", err)
			}
			// A large token response still round-trips (past the server's 4 KiB bound).
			big := bytes.Repeat([]byte("a"), 20000)
			sealed, err = SealTo(ck, []byte(InfoTokenResponse), nil, big)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := priv.Open(sealed, []byte(InfoTokenResponse), nil); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("big: %v", err)
			}
			if _, err := SealTo(ck, nil, nil, make([]byte, MaxClientSealedLen)); err == nil {
				t.Fatal("SealTo accepted a plaintext the client would refuse")
			}
		})
	}
}

// hostile builds variants of a good sealed value.
func flip(t *testing.T, sealed string, i int) string {
	t.Helper()
	raw, err := b64.DecodeString(sealed)
	if err != nil {
		t.Fatal(err)
	}
	if i < 0 {
		i += len(raw)
	}
	raw[i] ^= 0x01
	return b64.EncodeToString(raw)
}

func truncate(t *testing.T, sealed string, n int) string {
	t.Helper()
	raw, err := b64.DecodeString(sealed)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(raw[:n])
}

func TestOpenHostile(t *testing.T) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			k := mustGenerate(t, s.kemID, testLater)
			other := mustGenerate(t, s.kemID, testLater)
			expired := mustGenerate(t, s.kemID, testNow.Add(-time.Second))
			r := mustRing(t, k, other, expired)
			e := k.Public()
			enc := k.suite.encSize
			info, aad := []byte(InfoPasscode), PasscodeAAD("dev-1", "jti-1")
			seal := func(e PublicEntry, info, aad []byte) string {
				t.Helper()
				s, err := Seal(e, info, aad, []byte("123456"))
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			good := seal(e, info, aad)
			raw, _ := b64.DecodeString(good)
			// A value whose length is not a multiple of 3 has padding and
			// spare trailing bits; check it opens, then that its padded and
			// non-canonical spellings do not.
			n := 6
			if (enc+aeadTagSize+n)%3 == 0 {
				n = 7
			}
			odd, err := Seal(e, info, aad, []byte("1234567")[:n])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.Open(k.KID, odd, info, aad, testNow); err != nil {
				t.Fatalf("odd-length value: %v", err)
			}
			oddRaw, _ := b64.DecodeString(odd)
			padded := base64.URLEncoding.EncodeToString(oddRaw)
			if !strings.HasSuffix(padded, "=") {
				t.Fatal("test bug: no padding")
			}
			nonCanonical := odd[:len(odd)-1] + string(flipTrailingBits(odd[len(odd)-1]))
			if lax, err := base64.RawURLEncoding.DecodeString(nonCanonical); err != nil || !bytes.Equal(lax, oddRaw) {
				t.Fatal("test bug: non-canonical value does not decode to the same bytes")
			}

			cases := []struct {
				name   string
				kid    string
				sealed string
				info   []byte
				aad    []byte
				now    time.Time
				want   error
			}{
				{"flip enc first byte", k.KID, flip(t, good, 0), info, aad, testNow, ErrSealInvalid},
				{"flip enc last byte", k.KID, flip(t, good, enc-1), info, aad, testNow, ErrSealInvalid},
				{"flip ciphertext", k.KID, flip(t, good, enc), info, aad, testNow, ErrSealInvalid},
				{"flip tag", k.KID, flip(t, good, -1), info, aad, testNow, ErrSealInvalid},
				{"truncated by one", k.KID, truncate(t, good, len(raw)-1), info, aad, testNow, ErrSealInvalid},
				{"enc and tag only", k.KID, truncate(t, good, enc+aeadTagSize), info, aad, testNow, ErrSealInvalid},
				{"shorter than enc+tag", k.KID, truncate(t, good, enc+aeadTagSize-1), info, aad, testNow, ErrSealInvalid},
				{"shorter than enc", k.KID, truncate(t, good, enc-1), info, aad, testNow, ErrSealInvalid},
				{"empty", k.KID, "", info, aad, testNow, ErrSealInvalid},
				{"not base64url", k.KID, "!!!not*base64!!!", info, aad, testNow, ErrSealInvalid},
				{"standard alphabet", k.KID, strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+/", info, aad, testNow, ErrSealInvalid},
				{"padded", k.KID, padded, info, aad, testNow, ErrSealInvalid},
				{"trailing =", k.KID, good + "=", info, aad, testNow, ErrSealInvalid},
				{"embedded newline", k.KID, good[:10] + "\n" + good[10:], info, aad, testNow, ErrSealInvalid},
				{"non-canonical trailing bits", k.KID, nonCanonical, info, aad, testNow, ErrSealInvalid},
				{"other info", k.KID, seal(e, []byte(InfoTokenResponse), aad), info, aad, testNow, ErrSealInvalid},
				{"no info", k.KID, seal(e, nil, aad), info, aad, testNow, ErrSealInvalid},
				{"other jti (replay in another request)", k.KID, seal(e, info, PasscodeAAD("dev-1", "jti-2")), info, aad, testNow, ErrSealInvalid},
				{"other device", k.KID, seal(e, info, PasscodeAAD("dev-2", "jti-1")), info, aad, testNow, ErrSealInvalid},
				{"no aad", k.KID, seal(e, info, nil), info, aad, testNow, ErrSealInvalid},
				{"sealed to another key", k.KID, seal(other.Public(), info, aad), info, aad, testNow, ErrSealInvalid},
				{"opened with another kid", other.KID, good, info, aad, testNow, ErrSealInvalid},
				{"5 KiB", k.KID, strings.Repeat("A", 5<<10), info, aad, testNow, ErrSealInvalid},
				{"one over the limit", k.KID, strings.Repeat("A", MaxSealedLen+1), info, aad, testNow, ErrSealInvalid},
				{"5 KiB to unknown kid", "nope", strings.Repeat("A", 5<<10), info, aad, testNow, ErrSealInvalid},
				{"unknown kid", "AAAAAAAAAAAAAAAAAAAAAA", good, info, aad, testNow, ErrUnknownKID},
				{"empty kid", "", good, info, aad, testNow, ErrUnknownKID},
				{"expired key", expired.KID, seal(expired.Public(), info, aad), info, aad, testNow, ErrUnknownKID},
				{"key past not_after", k.KID, good, info, aad, k.NotAfter.Add(time.Nanosecond), ErrUnknownKID},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					pt, err := r.Open(c.kid, c.sealed, c.info, c.aad, c.now)
					if !errors.Is(err, c.want) {
						t.Fatalf("Open = %q, %v; want %v", pt, err, c.want)
					}
					if pt != nil {
						t.Fatalf("plaintext %q returned with an error", pt)
					}
					other := ErrSealInvalid
					if c.want == ErrSealInvalid {
						other = ErrUnknownKID
					}
					if errors.Is(err, other) {
						t.Fatalf("error %v matches both sentinels", err)
					}
					assertNoEcho(t, err, c.kid, c.sealed)
					if Code(err) == "" {
						t.Fatalf("Code(%v) is empty", err)
					}
				})
			}
			// The good value still opens, and at exactly not_after too.
			if _, err := r.Open(k.KID, good, info, aad, k.NotAfter); err != nil {
				t.Fatalf("good at not_after: %v", err)
			}
		})
	}
}

// flipTrailingBits changes a final base64url character so its unused low
// bits are non-zero while it still decodes under the lax decoder.
func flipTrailingBits(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}

// assertNoEcho fails if err's text contains a piece of the input.
func assertNoEcho(t *testing.T, err error, inputs ...string) {
	t.Helper()
	msg := err.Error()
	for _, in := range inputs {
		if len(in) >= 8 && strings.Contains(msg, in[:8]) {
			t.Fatalf("error %q echoes its input", msg)
		}
	}
}

func TestCode(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("x: %w", ErrSealInvalid): "seal_invalid",
		fmt.Errorf("x: %w", ErrUnknownKID):  "sealing_kid_unknown",
		errors.New("other"):                 "",
		nil:                                 "",
	} {
		if got := Code(err); got != want {
			t.Errorf("Code(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestRingRules(t *testing.T) {
	a := mustGenerate(t, KEMXWing, testLater)
	if _, err := NewRing(); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("empty ring: %v", err)
	}
	if _, err := NewRing(a, a); err == nil || !strings.Contains(err.Error(), "duplicate kid") {
		t.Fatalf("duplicate kid: %v", err)
	}
	if _, err := NewRing(&Key{KID: "x", KEMID: KEMXWing, KDFID: 1, AEADID: 2, NotAfter: testLater}); err == nil {
		t.Fatal("hand-made Key without a private key accepted")
	}
	if _, err := NewRing(nil); err == nil {
		t.Fatal("nil key accepted")
	}
	altered := *a
	altered.KID = "chosen-by-caller"
	if _, err := NewRing(&altered); err == nil {
		t.Fatal("key with an altered kid accepted")
	}
	if _, err := Generate(0x0010, testLater); !errors.Is(err, ErrUnsupportedSuite) {
		t.Fatalf("Generate P-256: %v", err)
	}
	var se *SuiteError
	if _, err := Generate(0x0041, testLater); !errors.As(err, &se) || se.KEMID != 0x0041 {
		t.Fatalf("Generate ML-KEM-768 alone: %v", err)
	}
	if _, err := Generate(KEMXWing, time.Time{}); err == nil {
		t.Fatal("Generate without not_after accepted")
	}

	// A zero or nil Ring opens nothing and publishes nothing, without panicking.
	for _, z := range []*Ring{{}, nil} {
		if _, err := z.Open(a.KID, "AAAA", nil, nil, testNow); !errors.Is(err, ErrUnknownKID) {
			t.Fatalf("zero ring Open: %v", err)
		}
		if got := z.KeysAt(testNow); got == nil || len(got) != 0 {
			t.Fatalf("zero ring KeysAt = %#v", got)
		}
	}

	// The ring holds a copy: changing the caller's Key changes nothing.
	r := mustRing(t, a)
	kid := a.KID
	a.KID, a.NotAfter = "mutated", testNow.Add(-time.Hour)
	if got := r.KeysAt(testNow); len(got) != 1 || got[0].KID != kid || !got[0].NotAfter.Equal(testLater) {
		t.Fatalf("ring changed with its input: %+v", got)
	}
}

// TestKIDStable: the kid is 22 base64url characters, the operator
// (keyset) derives the same one, and a key survives the round trip
// through keys.json.
func TestKIDStable(t *testing.T) {
	for _, s := range suites {
		k := mustGenerate(t, s.kemID, testLater)
		if len(k.KID) != 22 || strings.ContainsAny(k.KID, "=+/") {
			t.Fatalf("kid %q: want 22 base64url characters", k.KID)
		}
		if got := keyset.SealingKID(k.KEMID, k.pub); got != k.KID {
			t.Fatalf("%s: keyset.SealingKID = %s, sealing derives %s", s.name, got, k.KID)
		}
		k.NotBefore = testNow
		fk, err := k.KeySetKey()
		if err != nil {
			t.Fatal(err)
		}
		if kid, err := keyset.KID(fk.Algorithm, fk.PrivateKey); err != nil || kid != k.KID {
			t.Fatalf("%s: keyset.KID = %s, %v; want %s", s.name, kid, err, k.KID)
		}
		again, err := KeysFromKeySet(&keyset.File{Purpose: keyset.PurposePayloadSealing, Keys: []keyset.Key{fk}})
		if err != nil {
			t.Fatal(err)
		}
		if again[0].KID != k.KID || again[0].Public() != k.Public() || !again[0].NotBefore.Equal(k.NotBefore) {
			t.Fatalf("%s: reloaded key publishes %+v, want %+v", s.name, again[0].Public(), k.Public())
		}
	}
}

func TestKeyFormattingHidesPrivateKey(t *testing.T) {
	k := mustGenerate(t, KEMX25519, testLater)
	priv, _ := k.priv.Bytes()
	secret := b64.EncodeToString(priv)
	_, cpriv, _ := NewClientKey(KEMX25519)
	cb, _ := cpriv.priv.Bytes()
	csecret := b64.EncodeToString(cb)
	for _, s := range []string{
		fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k),
		fmt.Sprintf("%v %+v %#v %s", cpriv, cpriv, cpriv, cpriv),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, csecret) ||
			strings.Contains(s, fmt.Sprintf("%x", priv[:8])) || strings.Contains(s, fmt.Sprintf("%x", cb[:8])) {
			t.Fatalf("formatting shows the private key: %s", s)
		}
	}
}

func TestReplaceConcurrent(t *testing.T) {
	a := mustGenerate(t, KEMXWing, testLater)
	b := mustGenerate(t, KEMX25519, testLater)
	r := mustRing(t, a)
	sealed, err := Seal(a.Public(), []byte(InfoPasscode), nil, []byte("123456"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if _, err := r.Open(a.KID, sealed, []byte(InfoPasscode), nil, testNow); err != nil {
					t.Error(err)
					return
				}
				_ = r.KeysAt(testNow)
			}
		}()
	}
	for j := 0; j < 50; j++ {
		keys := []*Key{a}
		if j%2 == 0 {
			keys = append(keys, b)
		}
		if err := r.Replace(keys...); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := r.Replace(); err == nil {
		t.Fatal("Replace with no key accepted")
	}
	if len(r.KeysAt(testNow)) == 0 {
		t.Fatal("failed Replace emptied the ring")
	}
}
