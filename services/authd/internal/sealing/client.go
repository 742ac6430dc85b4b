package sealing

import (
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
)

// ClientKey is a response_sealing_key: a client's fresh one-time HPKE
// public key, shaped like a sealing-keys.json entry without kid and
// not_after (CONTRACT.md, "Sealed responses").
type ClientKey struct {
	KEMID  uint16 `json:"kem_id"`
	KDFID  uint16 `json:"kdf_id"`
	AEADID uint16 `json:"aead_id"`
	// PublicKey is unpadded base64url of the KEM's SerializePublicKey
	// output (RFC 9180 §7.1.1).
	PublicKey string `json:"public_key"`
}

// ParseClientKey parses the response_sealing_key form parameter, strictly:
// at most MaxClientKeyLen bytes, one JSON object with exactly the four
// members (no unknown, duplicate or differently-cased ones), one of the
// two accepted suites, and a public key that deserializes for its KEM
// (RFC 9180 §7.1.1 DeserializePublicKey) and encapsulates. The trial
// encapsulation also refuses low-order X25519 points, so a key accepted
// here never makes SealTo fail after the grant has already changed state.
// Every error wraps ErrClientKeyInvalid (and ErrUnsupportedSuite for a
// refused suite) and never echoes the input.
//
// Whether the X25519 suite is enabled is configuration: callers that
// allow only X-Wing check KEMID.
func ParseClientKey(raw string) (*ClientKey, error) {
	k, err := parseClientKey(raw)
	if err != nil {
		return nil, fmt.Errorf("sealing: response_sealing_key: %w: %w", ErrClientKeyInvalid, err)
	}
	return k, nil
}

func parseClientKey(raw string) (*ClientKey, error) {
	if len(raw) > MaxClientKeyLen {
		return nil, fmt.Errorf("longer than %d bytes", MaxClientKeyLen)
	}
	names := []string{"kem_id", "kdf_id", "aead_id", "public_key"}
	m, err := strictObject([]byte(raw), names...)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if _, ok := m[name]; !ok {
			return nil, fmt.Errorf("%s is required", name)
		}
	}
	var k ClientKey
	ids := []struct {
		name string
		dst  *uint16
	}{{"kem_id", &k.KEMID}, {"kdf_id", &k.KDFID}, {"aead_id", &k.AEADID}}
	for _, id := range ids {
		if err := unmarshalUint16(m[id.name], id.dst); err != nil {
			return nil, fmt.Errorf("%s: %w", id.name, err)
		}
	}
	if err := unmarshalString(m["public_key"], &k.PublicKey); err != nil {
		return nil, fmt.Errorf("public_key: %w", err)
	}
	s, pub, err := k.parse()
	if err != nil {
		return nil, err
	}
	if _, _, err := hpke.NewSender(pub, s.kdf, s.aead, nil); err != nil {
		return nil, errors.New("public_key: cannot encapsulate to it (low-order point?)")
	}
	return &k, nil
}

// parse checks k's suite and deserializes its public key.
func (k *ClientKey) parse() (*suite, hpke.PublicKey, error) {
	s, err := suiteFor(k.KEMID, k.KDFID, k.AEADID)
	if err != nil {
		return nil, nil, err
	}
	pub, err := parsePublicKey(s, k.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return s, pub, nil
}

// parsePublicKey decodes a base64url public key of suite s. The length is
// checked before the KEM parses it, so errors can say which is wrong.
func parsePublicKey(s *suite, enc string) (hpke.PublicKey, error) {
	if len(enc) != base64.RawURLEncoding.EncodedLen(s.pubSize) {
		return nil, fmt.Errorf("public_key: want %d bytes for kem 0x%04x", s.pubSize, s.kem.ID())
	}
	b, err := decodeB64(enc)
	if err != nil {
		return nil, fmt.Errorf("public_key: %w", err)
	}
	pub, err := s.kem.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public_key: not a valid public key for kem 0x%04x", s.kem.ID())
	}
	return pub, nil
}

// SealTo seals plaintext to a client's one-time key (sealed token
// responses and any other secret sent to the app) in HPKE base mode with a
// Sender context (RFC 9180 §5.1.1, §5.2), returning unpadded
// base64url(enc || ciphertext). The result is at most MaxClientSealedLen
// characters so that ClientPrivateKey.Open accepts it.
func SealTo(k *ClientKey, info, aad, plaintext []byte) (string, error) {
	if k == nil {
		return "", fmt.Errorf("sealing: seal to client: %w: nil key", ErrClientKeyInvalid)
	}
	s, pub, err := k.parse()
	if err != nil {
		return "", fmt.Errorf("sealing: seal to client: %w: %w", ErrClientKeyInvalid, err)
	}
	if sealedLen(s, len(plaintext)) > MaxClientSealedLen {
		return "", fmt.Errorf("sealing: seal to client: plaintext of %d bytes too long", len(plaintext))
	}
	out, err := seal(pub, s, info, aad, plaintext)
	if err != nil {
		return "", fmt.Errorf("sealing: seal to client: %w", err)
	}
	return out, nil
}

// Seal is the client side of Ring.Open: it seals plaintext to a server
// key taken from sealing-keys.json (the passcode, with InfoPasscode and
// PasscodeAAD). The caller picks an entry whose not_after has not passed.
// It refuses a result longer than MaxSealedLen, which the server would
// refuse anyway.
func Seal(entry PublicEntry, info, aad, plaintext []byte) (string, error) {
	s, err := suiteFor(entry.KEMID, entry.KDFID, entry.AEADID)
	if err != nil {
		return "", fmt.Errorf("sealing: seal: %w", err)
	}
	if sealedLen(s, len(plaintext)) > MaxSealedLen {
		return "", fmt.Errorf("sealing: seal: plaintext of %d bytes too long", len(plaintext))
	}
	pub, err := parsePublicKey(s, entry.PublicKey)
	if err != nil {
		return "", fmt.Errorf("sealing: seal: %w", err)
	}
	out, err := seal(pub, s, info, aad, plaintext)
	if err != nil {
		return "", fmt.Errorf("sealing: seal: %w", err)
	}
	return out, nil
}

// sealedLen is the length of base64url(enc || ciphertext).
func sealedLen(s *suite, plaintextLen int) int {
	return base64.RawURLEncoding.EncodedLen(s.encSize + plaintextLen + aeadTagSize)
}

// ClientPrivateKey is the private half of a client's one-time key (the
// reference mobile client and tests). Use it for one response, then drop
// it: it is one-time so that a later key compromise cannot open responses
// recorded earlier.
type ClientPrivateKey struct {
	suite *suite
	priv  hpke.PrivateKey
}

// NewClientKey generates a one-time key pair for kemID (KEMXWing or
// KEMX25519): the public half to send as response_sealing_key (marshal it
// with encoding/json), the private half to open the answer.
func NewClientKey(kemID uint16) (*ClientKey, *ClientPrivateKey, error) {
	s, err := suiteFor(kemID, KDFHKDFSHA256, AEADAES256GCM)
	if err != nil {
		return nil, nil, fmt.Errorf("sealing: new client key: %w", err)
	}
	priv, err := s.kem.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("sealing: new client key: %w", err)
	}
	pub := &ClientKey{
		KEMID:     s.kem.ID(),
		KDFID:     s.kdf.ID(),
		AEADID:    s.aead.ID(),
		PublicKey: b64.EncodeToString(priv.PublicKey().Bytes()),
	}
	return pub, &ClientPrivateKey{suite: s, priv: priv}, nil
}

// Open opens a value sealed with SealTo to this key, with the same info
// and aad (for a token response: InfoTokenResponse and the request's DPoP
// jti). Every failure wraps ErrSealInvalid.
func (k *ClientPrivateKey) Open(sealed string, info, aad []byte) ([]byte, error) {
	if k == nil || k.priv == nil {
		return nil, fmt.Errorf("sealing: client open: no key: %w", ErrSealInvalid)
	}
	pt, err := open(k.priv, k.suite, sealed, MaxClientSealedLen, info, aad)
	if err != nil {
		return nil, fmt.Errorf("sealing: client open: %w", err)
	}
	return pt, nil
}

// String names the key without key material.
func (k *ClientPrivateKey) String() string {
	if k == nil || k.suite == nil {
		return "sealing.ClientPrivateKey(nil)"
	}
	return fmt.Sprintf("sealing.ClientPrivateKey{kem: 0x%04x}", k.suite.kem.ID())
}

// GoString keeps %#v from printing the private key.
func (k *ClientPrivateKey) GoString() string { return k.String() }
