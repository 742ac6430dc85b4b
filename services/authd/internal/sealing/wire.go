package sealing

import (
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
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
