package sealing

import (
	"bytes"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// b64 is the contract's encoding for every binary value: unpadded base64url
// (RFC 4648 §5). Strict refuses non-zero trailing bits, so each value has a
// single encoding.
var b64 = base64.RawURLEncoding.Strict()

// isB64URL reports whether s holds only the unpadded base64url alphabet.
// encoding/base64 silently skips '\r' and '\n'; refusing them (and '=')
// up front keeps the encoding canonical.
func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// decodeB64 decodes canonical unpadded base64url. Its errors say nothing
// about the input: the input may be key material.
func decodeB64(s string) ([]byte, error) {
	if !isB64URL(s) {
		return nil, errors.New("not unpadded base64url")
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, errors.New("not canonical unpadded base64url")
	}
	return b, nil
}

// splitSealed checks and decodes base64url(enc || ciphertext) and splits it
// at the suite's Nenc. The length bound is checked before decoding.
func splitSealed(sealed string, maxLen int, s *suite) (enc, ct []byte, err error) {
	if len(sealed) > maxLen {
		return nil, nil, fmt.Errorf("longer than %d characters: %w", maxLen, ErrSealInvalid)
	}
	raw, err := decodeB64(sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("%v: %w", err, ErrSealInvalid)
	}
	if len(raw) < s.encSize+aeadTagSize {
		return nil, nil, fmt.Errorf("shorter than enc and tag: %w", ErrSealInvalid)
	}
	return raw[:s.encSize], raw[s.encSize:], nil
}

// seal runs HPKE base mode with a Sender context (RFC 9180 §5.1.1, §5.2),
// the only way to bind aad, and returns base64url(enc || ciphertext).
func seal(pub hpke.PublicKey, s *suite, info, aad, plaintext []byte) (string, error) {
	enc, sender, err := hpke.NewSender(pub, s.kdf, s.aead, info)
	if err != nil {
		// Encapsulation fails only for a bad public key (e.g. a low-order
		// X25519 point); the hpke message names no key bytes.
		return "", fmt.Errorf("encapsulate: %w", err)
	}
	ct, err := sender.Seal(aad, plaintext)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, 0, len(enc)+len(ct))
	out = append(append(out, enc...), ct...)
	return b64.EncodeToString(out), nil
}

// open is the receiving side of seal: decapsulate enc into a Recipient
// context (RFC 9180 §5.1.1) and open the first (only) message with aad
// (§5.2). Every failure is ErrSealInvalid; the decapsulation and AEAD
// failures are told apart in the message only, for logs.
func open(priv hpke.PrivateKey, s *suite, sealed string, maxLen int, info, aad []byte) ([]byte, error) {
	enc, ct, err := splitSealed(sealed, maxLen, s)
	if err != nil {
		return nil, err
	}
	r, err := hpke.NewRecipient(enc, priv, s.kdf, s.aead, info)
	if err != nil {
		return nil, fmt.Errorf("decapsulation failed: %w", ErrSealInvalid)
	}
	pt, err := r.Open(aad, ct)
	if err != nil {
		return nil, fmt.Errorf("authentication failed (tampered, or other key, info or aad): %w", ErrSealInvalid)
	}
	return pt, nil
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
		if !slices.Contains(allowed, name) {
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
