package sealing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"strongroom.dev/api/keyset"
	"strongroom.dev/services/authd/internal/mounted"
)

func mustMount(t testing.TB, dir string, o mounted.Options) *Ring {
	t.Helper()
	r, err := Mount(dir, time.Hour, o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func kidsOf(entries []PublicEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.KID)
	}
	return out
}

func TestMount(t *testing.T) {
	xw := newKeySetKey(t, keyset.XWing, testNow.Add(-time.Hour), testLater)
	x := newKeySetKey(t, keyset.X25519, testNow.Add(-time.Hour), testLater.Add(-time.Hour))
	ahead := newKeySetKey(t, keyset.XWing, testNow.Add(time.Hour), testLater.Add(time.Hour))
	retired := newKeySetKey(t, keyset.XWing, testNow.Add(-2*time.Hour), testNow.Add(-time.Second))
	m := newKubeMount(t, sealingSet(t, xw, x, ahead, retired))
	clk := newClock(testNow)
	r := mustMount(t, m.dir, mounted.Options{Now: clk.now})

	// Listed: the keys whose window holds now, X-Wing first, then the
	// longest-lived; Keys and Document use the ring's clock.
	if got, want := kidsOf(r.Keys()), []string{xw.KID, x.KID}; !slices.Equal(got, want) {
		t.Fatalf("Keys = %v, want %v (not the key ahead, not the retired one)", got, want)
	}
	if doc := r.Document().(KeysDocument); !slices.Equal(kidsOf(doc.Keys), []string{xw.KID, x.KID}) {
		t.Fatalf("Document = %+v", doc)
	}
	if got, want := kidsOf(r.KeysAt(ahead.NotBefore)), []string{ahead.KID, xw.KID, x.KID}; !slices.Equal(got, want) {
		t.Fatalf("KeysAt(ahead's not_before) = %v, want %v", got, want)
	}
	for _, e := range r.Keys() {
		if !e.NotAfter.Equal(testLater) && !e.NotAfter.Equal(testLater.Add(-time.Hour)) {
			t.Fatalf("entry %s not_after %s", e.KID, e.NotAfter)
		}
	}

	// Opens: listed keys and the key published ahead; not the retired one,
	// which is held until the operator drops it but past its not_after.
	info, aad := []byte(InfoPasscode), PasscodeAAD("d", "j")
	for _, c := range []struct {
		key  keyset.Key
		want error
	}{{xw, nil}, {x, nil}, {ahead, nil}, {retired, ErrUnknownKID}} {
		k, err := KeysFromKeySet(&keyset.File{Purpose: keyset.PurposePayloadSealing, Keys: []keyset.Key{c.key}})
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := Seal(k[0].Public(), info, aad, []byte("123456"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Open(c.key.KID, sealed, info, aad, testNow)
		if !errors.Is(err, c.want) || (err == nil && string(got) != "123456") {
			t.Fatalf("Open with %s: %q, %v; want %v", c.key, got, err, c.want)
		}
		if c.want != nil {
			if _, err := r.Open(c.key.KID, sealed, info, aad, c.key.NotAfter); err != nil {
				t.Fatalf("retired key at its not_after: %v", err)
			}
		}
	}

	if r.MaxAge() != DefaultMaxAge {
		t.Fatalf("MaxAge = %v, want %v for a day's publish_ahead", r.MaxAge(), DefaultMaxAge)
	}
	if err := r.Replace(mustGenerate(t, KEMXWing, testLater)); err == nil {
		t.Fatal("Replace accepted on a mounted ring")
	}
	if got := kidsOf(r.Keys()); len(got) != 2 {
		t.Fatalf("refused Replace changed the ring: %v", got)
	}
}

// TestMountHostile feeds Mount hostile keys.json contents: each is refused
// with ErrKeyFile, and the error holds no key material.
func TestMountHostile(t *testing.T) {
	nb, na := testNow.Add(-time.Hour), testLater
	good := newKeySetKey(t, keyset.XWing, nb, na)
	other := newKeySetKey(t, keyset.X25519, nb, na)
	es, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	esDER, _ := x509.MarshalPKCS8PrivateKey(es)
	esKID, err := keyset.KID(keyset.ES256, esDER)
	if err != nil {
		t.Fatal(err)
	}
	hs := make([]byte, 32)
	_, _ = rand.Read(hs)
	hsKID, _ := keyset.KID(keyset.HS256, hs)
	secrets := [][]byte{good.PrivateKey, other.PrivateKey, esDER, hs}
	secret := b64.EncodeToString(good.PrivateKey)

	// set is a keys.json as a map, so a case can break any part of it.
	type obj = map[string]any
	key := func(k keyset.Key, change obj) obj {
		m := obj{
			"kid": k.KID, "algorithm": k.Algorithm, "private_key": b64.EncodeToString(k.PrivateKey),
			"not_before": k.NotBefore.Format(time.RFC3339), "not_after": k.NotAfter.Format(time.RFC3339),
		}
		for n, v := range change {
			if v == nil {
				delete(m, n)
			} else {
				m[n] = v
			}
		}
		return m
	}
	set := func(change obj, keys ...obj) []byte {
		m := obj{"purpose": keyset.PurposePayloadSealing, "publish_ahead": "24h0m0s", "protected_lifetime": "1h0m0s", "keys": keys}
		for n, v := range change {
			if v == nil {
				delete(m, n)
			} else {
				m[n] = v
			}
		}
		return rawJSON(t, m)
	}
	goodFile := set(nil, key(good, nil))
	if _, err := Mount(newKubeMount(t, goodFile).dir, time.Hour, mounted.Options{}); err != nil {
		t.Fatalf("baseline file refused: %v", err)
	}
	withKey := func(change obj) []byte { return set(nil, key(good, change)) }

	cases := []struct {
		name string
		data []byte // nil: no keys.json at all
		also error
	}{
		{"no keys.json", nil, os.ErrNotExist},
		{"empty file", []byte{}, nil},
		{"not JSON", []byte("purpose: payload-sealing\n"), nil},
		{"half-written", goodFile[:len(goodFile)/2], nil},
		{"cut inside the private key", goodFile[:bytes.Index(goodFile, []byte(secret))+20], nil},
		{"array", []byte("[" + string(goodFile) + "]"), nil},
		{"two documents", append(slices.Clone(goodFile), goodFile...), nil},
		{"null", []byte("null"), nil},
		{"unknown member", set(obj{"keyz": []any{}}, key(good, nil)), nil},
		{"unknown key member", withKey(obj{"kem_id": 25722}), nil},
		{"token-signing set", set(obj{"purpose": keyset.PurposeTokenSigning}, key(keyset.Key{KID: esKID, Algorithm: keyset.ES256, NotBefore: nb, NotAfter: na, PrivateKey: esDER}, nil)), nil},
		{"hmac-secret set", set(obj{"purpose": keyset.PurposeHMACSecret}, key(keyset.Key{KID: hsKID, Algorithm: keyset.HS256, NotBefore: nb, NotAfter: na, PrivateKey: hs}, nil)), nil},
		{"sealing keys labelled token-signing", set(obj{"purpose": keyset.PurposeTokenSigning}, key(good, nil)), nil},
		{"no purpose", set(obj{"purpose": nil}, key(good, nil)), nil},
		{"protected lifetime too short", set(obj{"protected_lifetime": "59m59s"}, key(good, nil)), nil},
		{"no protected lifetime", set(obj{"protected_lifetime": nil}, key(good, nil)), nil},
		{"negative protected lifetime", set(obj{"protected_lifetime": "-2h"}, key(good, nil)), nil},
		{"protected lifetime a number", set(obj{"protected_lifetime": 7200}, key(good, nil)), nil},
		{"no keys", set(nil), ErrNoKeys},
		{"keys null", set(obj{"keys": nil}), ErrNoKeys},
		{"ES256 key", set(nil, key(keyset.Key{KID: esKID, Algorithm: keyset.ES256, NotBefore: nb, NotAfter: na, PrivateKey: esDER}, nil)), nil},
		{"HS256 key", set(nil, key(keyset.Key{KID: hsKID, Algorithm: keyset.HS256, NotBefore: nb, NotAfter: na, PrivateKey: hs}, nil)), nil},
		{"unknown algorithm", withKey(obj{"algorithm": "MLKEM768"}), nil},
		{"algorithm in lower case", withKey(obj{"algorithm": "mlkem768-x25519"}), nil},
		{"X25519 key labelled X-Wing", set(nil, key(other, obj{"algorithm": keyset.XWing})), nil},
		{"X-Wing seed labelled X25519", withKey(obj{"algorithm": keyset.X25519}), nil},
		{"kid of another key", withKey(obj{"kid": other.KID}), nil},
		{"kid chosen by the writer", withKey(obj{"kid": "my-key"}), nil},
		{"kid is the private key", withKey(obj{"kid": secret}), nil},
		{"no kid", withKey(obj{"kid": nil}), nil},
		{"empty private key", withKey(obj{"private_key": ""}), nil},
		{"no private key", withKey(obj{"private_key": nil}), nil},
		{"private key null", []byte(strings.Replace(string(goodFile), `"`+secret+`"`, "null", 1)), nil},
		{"private key a number", withKey(obj{"private_key": 7}), nil},
		{"31-byte key", withKey(obj{"private_key": b64.EncodeToString(good.PrivateKey[:31])}), nil},
		{"33-byte key", withKey(obj{"private_key": b64.EncodeToString(append(slices.Clone(good.PrivateKey), 0))}), nil},
		{"expanded ML-KEM key", withKey(obj{"private_key": b64.EncodeToString(bytes.Repeat(good.PrivateKey, 75))}), nil},
		{"padded key", withKey(obj{"private_key": base64.URLEncoding.EncodeToString(good.PrivateKey) + "="}), nil},
		{"std-alphabet key", withKey(obj{"private_key": base64.StdEncoding.EncodeToString(append([]byte{0xfb, 0xff}, good.PrivateKey[2:]...))}), nil},
		{"hex key", withKey(obj{"private_key": hex.EncodeToString(good.PrivateKey)}), nil},
		{"bad JSON escape inside the key", []byte(strings.Replace(string(goodFile), secret, secret[:10]+`\q`+secret[12:], 1)), nil},
		{"not_before after not_after", withKey(obj{"not_before": na.Add(time.Second).Format(time.RFC3339)}), nil},
		{"not_before equal to not_after", withKey(obj{"not_before": na.Format(time.RFC3339)}), nil},
		{"no not_before", withKey(obj{"not_before": nil}), nil},
		{"no not_after", withKey(obj{"not_after": nil}), nil},
		{"misspelt not_after", withKey(obj{"not_after": nil, "not_afer": na.Format(time.RFC3339)}), nil},
		{"not_after not RFC 3339", withKey(obj{"not_after": "01/01/2027"}), nil},
		{"window within one second", withKey(obj{"not_before": "2026-06-01T12:00:00.2Z", "not_after": "2026-06-01T12:00:00.7Z"}), nil},
		{"same key twice", set(nil, key(good, nil), key(good, nil)), nil},
		{"same key twice, other window", set(nil, key(good, nil), key(good, obj{"not_after": testLater.Add(time.Hour).Format(time.RFC3339)})), nil},
		{"one bad key among good ones", set(nil, key(other, nil), key(good, obj{"kid": other.KID})), nil},
		{"too large", append(bytes.Repeat([]byte(" "), keyset.MaxFileSize), goodFile...), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.data != nil {
				if err := os.WriteFile(filepath.Join(dir, keyset.FileName), c.data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r, err := Mount(dir, time.Hour, mounted.Options{})
			if !errors.Is(err, ErrKeyFile) || r != nil {
				t.Fatalf("Mount = %v, %v; want ErrKeyFile", r, err)
			}
			if c.also != nil && !errors.Is(err, c.also) {
				t.Fatalf("Mount error %v; want also %v", err, c.also)
			}
			assertNoSecret(t, err.Error(), secrets...)
		})
	}

	t.Run("keys.json is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, keyset.FileName), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := Mount(dir, time.Hour, mounted.Options{}); !errors.Is(err, ErrKeyFile) {
			t.Fatalf("Mount: %v", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		if _, err := Mount(filepath.Join(t.TempDir(), "nope"), time.Hour, mounted.Options{}); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Mount: %v", err)
		}
	})
}

func TestMaxAge(t *testing.T) {
	k := newKeySetKey(t, keyset.XWing, testNow.Add(-time.Hour), testLater)
	file := func(publishAhead string) []byte {
		return rawJSON(t, map[string]any{
			"purpose": keyset.PurposePayloadSealing, "publish_ahead": publishAhead, "protected_lifetime": "1h0m0s",
			"keys": []keyset.Key{k},
		})
	}
	for _, c := range []struct {
		publishAhead string
		want         time.Duration
	}{
		{"720h", DefaultMaxAge},
		{"24h", DefaultMaxAge},
		{"10m1s", DefaultMaxAge},
		{"10m", DefaultMaxAge},
		{"9m59s", 4*time.Minute + 59*time.Second},
		{"5m", 150 * time.Second},
		{"3s", time.Second},
		{"1.999s", 0},
		{"0s", 0},
	} {
		t.Run(c.publishAhead, func(t *testing.T) {
			r := mustMount(t, newKubeMount(t, file(c.publishAhead)).dir, mounted.Options{})
			if got := r.MaxAge(); got != c.want {
				t.Fatalf("MaxAge = %v, want %v", got, c.want)
			}
		})
	}
	t.Run("follows the file", func(t *testing.T) {
		clk := newClock(testNow)
		m := newKubeMount(t, file("24h"))
		r := mustMount(t, m.dir, mounted.Options{Now: clk.now})
		m.update(file("1m"))
		clk.advance(time.Second)
		if got := r.MaxAge(); got != 30*time.Second {
			t.Fatalf("MaxAge after reload = %v, want 30s", got)
		}
	})
	for name, r := range map[string]*Ring{"NewRing": mustRing(t, mustGenerate(t, KEMXWing, testLater)), "zero": {}, "nil": nil} {
		if got := r.MaxAge(); got != DefaultMaxAge {
			t.Fatalf("%s ring MaxAge = %v, want %v", name, got, DefaultMaxAge)
		}
	}
}

// TestMountKeepsLastGood: a keys.json that cannot be used (half-written,
// corrupt, refused) leaves the ring serving its last good keys, logs why
// without key material, and a good version after it is picked up.
func TestMountKeepsLastGood(t *testing.T) {
	nb, na := testNow.Add(-time.Hour), testLater
	a := newKeySetKey(t, keyset.XWing, nb, na)
	x := newKeySetKey(t, keyset.X25519, nb, na)
	b := newKeySetKey(t, keyset.XWing, nb.Add(time.Minute), na.Add(time.Hour))
	v1, v2 := sealingSet(t, a, x), sealingSet(t, a, x, b)
	secrets := [][]byte{a.PrivateKey, x.PrivateKey, b.PrivateKey}
	mismatch := rawJSON(t, keyset.File{Purpose: keyset.PurposePayloadSealing, PublishAhead: keyset.Duration(time.Hour),
		ProtectedLifetime: keyset.Duration(time.Hour), Keys: []keyset.Key{a, {KID: x.KID, Algorithm: keyset.XWing, NotBefore: nb, NotAfter: na, PrivateKey: b.PrivateKey}}})
	info, aad := []byte(InfoPasscode), PasscodeAAD("d", "j")

	cases := []struct {
		name  string
		write func(m *kubeMount)
	}{
		{"half-written in place", func(m *kubeMount) { m.overwrite(v2[:len(v2)/2]) }},
		{"cut inside a private key", func(m *kubeMount) {
			m.overwrite(v2[:bytes.Index(v2, []byte(b64.EncodeToString(b.PrivateKey)))+16])
		}},
		{"emptied", func(m *kubeMount) { m.overwrite(nil) }},
		{"garbage", func(m *kubeMount) { m.update([]byte("\x00\xff not json")) }},
		{"wrong purpose", func(m *kubeMount) {
			m.update(bytes.Replace(v2, []byte(`"payload-sealing"`), []byte(`"hmac-secret"`), 1))
		}},
		{"protected lifetime too short", func(m *kubeMount) { m.update(bytes.Replace(v2, []byte(`"1h0m0s"`), []byte(`"30m0s"`), 1)) }},
		{"kid mismatch", func(m *kubeMount) { m.update(mismatch) }},
		{"no keys", func(m *kubeMount) { m.update(sealingSet(t)) }},
		{"removed", func(m *kubeMount) {
			if err := os.Remove(m.path()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			clk := newClock(testNow)
			m := newKubeMount(t, v1)
			r := mustMount(t, m.dir, mounted.Options{Now: clk.now, Log: slog.New(slog.NewJSONHandler(&log, nil))})
			keys, err := KeysFromKeySet(&keyset.File{Purpose: keyset.PurposePayloadSealing, Keys: []keyset.Key{a, x}})
			if err != nil {
				t.Fatal(err)
			}
			before := r.Keys()

			c.write(m)
			for range 3 {
				clk.advance(time.Second)
				if got := r.Keys(); !slices.Equal(got, before) {
					t.Fatalf("keys changed to %v, want the last good %v", kidsOf(got), kidsOf(before))
				}
				for _, k := range keys {
					sealed, err := Seal(k.Public(), info, aad, []byte("123456"))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := r.Open(k.KID, sealed, info, aad, clk.now()); err != nil {
						t.Fatalf("last good key %s does not open: %v", k.KID, err)
					}
				}
			}
			if n := strings.Count(log.String(), "keeping the last good version"); n != 1 {
				t.Fatalf("%d warnings, want one: %s", n, log.String())
			}
			assertNoSecret(t, log.String(), secrets...)

			// The next good version is picked up.
			if c.name == "removed" {
				if err := os.Symlink(filepath.Join("..data", keyset.FileName), m.path()); err != nil {
					t.Fatal(err)
				}
			}
			m.update(v2)
			clk.advance(time.Second)
			if got, want := kidsOf(r.Keys()), []string{b.KID, a.KID, x.KID}; !slices.Equal(got, want) {
				t.Fatalf("after a good version: %v, want %v", got, want)
			}
			if !strings.Contains(log.String(), "mounted files reloaded") {
				t.Fatalf("reload not logged: %s", log.String())
			}
		})
	}
}
