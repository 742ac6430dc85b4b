package sealing

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDocumentShape checks /.well-known/sealing-keys.json against
// CONTRACT.md ("Discovery and keys"): {"keys": [{"kid", "kem_id",
// "kdf_id", "aead_id", "public_key", "not_after"}]}, RFC 9180 / IANA ids,
// unpadded base64url public key, RFC 3339 not_after.
func TestDocumentShape(t *testing.T) {
	xw := mustGenerate(t, KEMXWing, time.Now().Add(24*time.Hour))
	x := mustGenerate(t, KEMX25519, time.Now().Add(48*time.Hour))
	gone := mustGenerate(t, KEMXWing, time.Now().Add(-time.Hour))
	r := mustRing(t, x, gone, xw)

	b, err := json.Marshal(r.Document())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string][]map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("document %s: %v", b, err)
	}
	if len(doc) != 1 || doc["keys"] == nil {
		t.Fatalf("top level must be exactly {\"keys\": [...]}: %s", b)
	}
	keys := doc["keys"]
	if len(keys) != 2 {
		t.Fatalf("%d keys published, want 2 (not the expired one)", len(keys))
	}
	want := []string{"aead_id", "kdf_id", "kem_id", "kid", "not_after", "public_key"}
	for i, e := range keys {
		var names []string
		for n := range e {
			names = append(names, n)
		}
		slices.Sort(names)
		if !slices.Equal(names, want) {
			t.Fatalf("entry %d has members %v, want exactly %v", i, names, want)
		}
	}

	// The default suite comes first, with the IANA numbers as JSON integers.
	first := keys[0]
	for name, lit := range map[string]string{"kem_id": "25722", "kdf_id": "1", "aead_id": "2"} {
		if got := string(first[name]); got != lit {
			t.Errorf("first entry %s = %s, want %s", name, got, lit)
		}
	}
	if got := string(keys[1]["kem_id"]); got != "32" {
		t.Errorf("second entry kem_id = %s, want 32 (DHKEM(X25519))", got)
	}
	for i, e := range keys {
		var kid, pk, na string
		for name, dst := range map[string]*string{"kid": &kid, "public_key": &pk, "not_after": &na} {
			if err := json.Unmarshal(e[name], dst); err != nil {
				t.Fatalf("entry %d %s: %v", i, name, err)
			}
		}
		raw, err := decodeB64(pk)
		if err != nil {
			t.Fatalf("entry %d public_key not unpadded base64url: %v", i, err)
		}
		wantLen := 1216
		if i == 1 {
			wantLen = 32
		}
		if len(raw) != wantLen {
			t.Errorf("entry %d public key %d bytes, want %d", i, len(raw), wantLen)
		}
		ts, err := time.Parse(time.RFC3339, na)
		if err != nil || !strings.HasSuffix(na, "Z") || strings.Contains(na, ".") {
			t.Errorf("entry %d not_after %q: want RFC 3339 UTC seconds (%v)", i, na, err)
		}
		if i == 0 && (kid != xw.KID || !ts.Equal(xw.NotAfter)) {
			t.Errorf("entry 0 is %s %s, want %s %s", kid, ts, xw.KID, xw.NotAfter)
		}
	}

	// It decodes into the typed form a client uses, and Seal works on it.
	var typed KeysDocument
	if err := json.Unmarshal(b, &typed); err != nil {
		t.Fatal(err)
	}
	if _, err := Seal(typed.Keys[0], []byte(InfoPasscode), nil, []byte("123456")); err != nil {
		t.Fatal(err)
	}

	// A ring with only expired keys publishes an empty list, not null.
	b, _ = json.Marshal(mustRing(t, gone).Document())
	if string(b) != `{"keys":[]}` {
		t.Fatalf("empty document = %s", b)
	}
}
