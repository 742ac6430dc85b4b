package sealing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Key files let replicas share sealing keys: the operator's KeySet
// (purpose payload-sealing) writes one JSON file per key into a mounted
// Secret, and every replica loads the same bytes, so derives the same kid.
//
//	{"kem_id": 25722, "private_key": "<unpadded base64url>", "not_after": "2027-01-01T00:00:00Z"}
//
// private_key is the KEM's SerializePrivateKey output (RFC 9180 §7.1.2):
//
//   - X-Wing (kem_id 25722 = 0x647a): the 32-byte seed of
//     draft-ietf-hpke-pq / draft-connolly-cfrg-xwing-kem, from which both
//     the ML-KEM-768 and the X25519 private keys are expanded. It is the
//     form hpke.PrivateKey.Bytes returns and KEM.NewPrivateKey takes, and
//     it is 32 bytes instead of the 2400-byte expanded ML-KEM key.
//   - DHKEM(X25519) (kem_id 32 = 0x0020): the 32-byte X25519 scalar
//     (RFC 7748), clamped as §7.1.2 requires on output; unclamped scalars
//     are accepted on input since X25519 clamps anyway.
//
// The KDF and AEAD are not in the file: there is only one of each. The
// three members are required, each once; anything else is refused, so a
// misspelt "not_after" cannot yield a key that never expires.

// maxKeyFileSize bounds a key file; a real one is about 120 bytes.
const maxKeyFileSize = 16 << 10

type keyFile struct {
	KEMID      uint16    `json:"kem_id"`
	PrivateKey string    `json:"private_key"`
	NotAfter   time.Time `json:"not_after"`
}

// MarshalFile returns k in the key file format, for tooling and tests.
// The output holds the private key: write it with mode 0600.
func (k *Key) MarshalFile() ([]byte, error) {
	if err := k.check(); err != nil {
		return nil, fmt.Errorf("sealing: marshal key file: %w", err)
	}
	priv, err := k.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("sealing: marshal key file: %w", err)
	}
	if len(priv) != k.suite.privSize {
		return nil, errors.New("sealing: marshal key file: unexpected private key size")
	}
	out, err := json.Marshal(keyFile{KEMID: k.KEMID, PrivateKey: b64.EncodeToString(priv), NotAfter: k.NotAfter})
	clear(priv)
	if err != nil {
		return nil, fmt.Errorf("sealing: marshal key file: %w", err)
	}
	return append(out, '\n'), nil
}

// ParseKeyFile parses one key file. Its errors never contain key material.
func ParseKeyFile(data []byte) (*Key, error) {
	k, err := parseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("sealing: %w: %w", ErrKeyFile, err)
	}
	return k, nil
}

func parseKeyFile(data []byte) (*Key, error) {
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFileSize)
	}
	m, err := strictObject(data, "kem_id", "private_key", "not_after")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"kem_id", "private_key", "not_after"} {
		if _, ok := m[name]; !ok {
			return nil, fmt.Errorf("%s is required", name)
		}
	}
	var f keyFile
	if err := unmarshalUint16(m["kem_id"], &f.KEMID); err != nil {
		return nil, fmt.Errorf("kem_id: %w", err)
	}
	if err := unmarshalString(m["private_key"], &f.PrivateKey); err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	if err := json.Unmarshal(m["not_after"], &f.NotAfter); err != nil || f.NotAfter.IsZero() {
		// time's error quotes its input; ours does not.
		return nil, errors.New("not_after: want an RFC 3339 time")
	}
	s, err := suiteFor(f.KEMID, KDFHKDFSHA256, AEADAES256GCM)
	if err != nil {
		return nil, err
	}
	seed, err := decodeB64(f.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("private_key: %w", err)
	}
	defer clear(seed)
	if len(seed) != s.privSize {
		return nil, fmt.Errorf("private_key: want %d bytes for kem 0x%04x", s.privSize, f.KEMID)
	}
	priv, err := s.kem.NewPrivateKey(seed)
	if err != nil {
		return nil, errors.New("private_key: not a valid private key for its KEM")
	}
	return newKey(s, priv, f.NotAfter)
}

// LoadDir loads every *.json key file in dir (hidden entries such as a
// Kubernetes Secret's ..data are skipped) into a ring. It fails if any
// file is invalid, if two files hold the same key, or if there is none: a
// broken mount should stop authd, not silently publish fewer keys.
// Expired keys are loaded; Open and Keys judge expiry at each use.
func LoadDir(dir string) (*Ring, error) {
	keys, err := loadKeys(dir)
	if err != nil {
		return nil, err
	}
	return NewRing(keys...)
}

// ReloadDir replaces the ring's keys with those in dir, as LoadDir loads
// them. On error the ring keeps serving its current keys, so a
// half-written mount does not take sealing down.
func (r *Ring) ReloadDir(dir string) error {
	keys, err := loadKeys(dir)
	if err != nil {
		return err
	}
	return r.Replace(keys...)
}

func loadKeys(dir string) ([]*Key, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sealing: load keys: %w", err)
	}
	var keys []*Key
	files := map[string]string{} // kid → file name
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") || e.IsDir() {
			continue
		}
		data, err := readLimited(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("sealing: key file %s: %w: %w", name, ErrKeyFile, err)
		}
		k, err := parseKeyFile(data)
		clear(data)
		if err != nil {
			return nil, fmt.Errorf("sealing: key file %s: %w: %w", name, ErrKeyFile, err)
		}
		if other, dup := files[k.KID]; dup {
			return nil, fmt.Errorf("sealing: key files %s and %s hold the same key: %w", other, name, ErrKeyFile)
		}
		files[k.KID] = name
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("sealing: load keys: no *.json key file: %w", ErrNoKeys)
	}
	return keys, nil
}

// readLimited reads a regular file (following symlinks, as Kubernetes
// mounts use them) of at most maxKeyFileSize bytes.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFileSize)
	}
	return data, nil
}

// strictObject decodes data as exactly one JSON object whose member names
// are all in allowed, each at most once, with nothing after it.
// encoding/json alone would match names case-insensitively, keep the last
// of duplicate members and ignore unknown ones; a key's suite must not be
// ambiguous. Errors name no input (member names included).
func strictObject(data []byte, allowed ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, errors.New("malformed JSON")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage, len(allowed))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errors.New("malformed JSON")
		}
		name, _ := tok.(string)
		known := false
		for _, a := range allowed {
			known = known || name == a
		}
		if !known {
			return nil, fmt.Errorf("unknown member (want only %s)", strings.Join(allowed, ", "))
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("duplicate member %s", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errors.New("malformed JSON")
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, errors.New("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return m, nil
}

// unmarshalUint16 accepts only a JSON integer in [0, 65535].
func unmarshalUint16(raw json.RawMessage, v *uint16) error {
	if len(raw) == 0 || raw[0] < '0' || raw[0] > '9' || json.Unmarshal(raw, v) != nil {
		return errors.New("want an integer from 0 to 65535")
	}
	return nil
}

// unmarshalString accepts only a JSON string (not null).
func unmarshalString(raw json.RawMessage, v *string) error {
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, v) != nil {
		return errors.New("want a string")
	}
	return nil
}
