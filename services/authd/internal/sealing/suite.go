// Package sealing is authd's HPKE layer (RFC 9180): the server's sealing
// key ring published at /.well-known/sealing-keys.json, opening the secrets
// mobile apps seal to it (the passcode), and sealing responses to a
// client's one-time key (response_sealing_key). See CONTRACT.md, "Discovery
// and keys" and "Sealing (one-time keys)".
//
// Everything is HPKE base mode (RFC 9180 §5.1.1) with exactly one message
// per context, sent as unpadded base64url(enc || ciphertext). Go's one-shot
// hpke.Seal/hpke.Open take no aad, so this package always goes through a
// Sender/Recipient context (RFC 9180 §5.2) to bind the aad the contract
// asks for (device_id + "." + DPoP jti, or the jti alone): a sealed value
// lifted from one request does not open in another.
//
// Only two suites exist here (RFC 9180 §7 identifiers):
//
//   - default: X-Wing, MLKEM768-X25519 (KEM 0x647a, draft-ietf-hpke-pq),
//     HKDF-SHA256 (0x0001), AES-256-GCM (0x0002) — hybrid post-quantum, so a
//     passcode recorded today cannot be opened by a future quantum computer;
//   - for old clients, by configuration: DHKEM(X25519, HKDF-SHA256)
//     (0x0020) with the same KDF and AEAD.
//
// The server's keys are the operator's payload-sealing KeySet, a Secret
// mounted as a directory holding keys.json (package keyset; Mount), picked
// up without a restart and activated by time: a key is listed in
// sealing-keys.json from its not_before to its not_after, so every replica
// publishes the same document at any instant, whenever it last reloaded
// the file. Dev mode and tests build rings with Generate and NewRing.
//
// Any other identifier is refused with ErrUnsupportedSuite, so a peer
// cannot negotiate a weaker suite. Errors never echo the caller's input or
// any key material; they wrap ErrSealInvalid, ErrUnknownKID,
// ErrClientKeyInvalid, ErrUnsupportedSuite or ErrKeyFile for errors.Is.
package sealing

import (
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"fmt"

	"strongroom.dev/api/keyset"
)

// HPKE identifiers (RFC 9180 §7.1, §7.2, §7.3 and the IANA HPKE registry).
const (
	// KEMXWing is MLKEM768-X25519 (X-Wing), the default KEM.
	KEMXWing uint16 = 0x647a
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256) (RFC 9180 §7.1), allowed by
	// configuration for clients without ML-KEM.
	KEMX25519 uint16 = 0x0020
	// KDFHKDFSHA256 is HKDF-SHA256 (RFC 9180 §7.2), the only KDF accepted.
	KDFHKDFSHA256 uint16 = 0x0001
	// AEADAES256GCM is AES-256-GCM (RFC 9180 §7.3), the only AEAD accepted.
	AEADAES256GCM uint16 = 0x0002
)

// The two uses of sealing (CONTRACT.md, "Sealing (one-time keys)"). The
// info string feeds the key schedule (RFC 9180 §5.1), so a value sealed for
// one use never opens as the other.
const (
	InfoPasscode      = "strongroom/passcode/v1"
	InfoTokenResponse = "strongroom/token-response/v1"
)

// Size limits. They are checked before any decoding so that hostile input
// costs nothing.
const (
	// MaxSealedLen bounds a sealed value the server opens (characters of
	// base64url), per the contract's hostile-input rule.
	MaxSealedLen = 4096
	// MaxClientKeyLen bounds the response_sealing_key form parameter.
	MaxClientKeyLen = 4096
	// MaxClientSealedLen bounds a sealed value a client opens: token
	// responses (JWTs with authorization_details) can exceed MaxSealedLen.
	MaxClientSealedLen = 64 << 10
)

// PasscodeAAD is the aad of a sealed passcode: UTF-8 of deviceID + "." +
// jti, where jti is the DPoP proof's of the same request, so the sealed
// passcode cannot be replayed in another request or for another device.
func PasscodeAAD(deviceID, jti string) []byte {
	b := make([]byte, 0, len(deviceID)+1+len(jti))
	b = append(b, deviceID...)
	b = append(b, '.')
	return append(b, jti...)
}

// Errors. Each maps to one stable contract code (see Code).
var (
	// ErrSealInvalid: a sealed value does not open — bad base64url, too
	// long or too short, wrong info or aad, tampered bytes (→ seal_invalid).
	ErrSealInvalid = errors.New("sealed value does not open")
	// ErrUnknownKID: no unexpired server key has this kid
	// (→ sealing_kid_unknown; the client should fetch the keys again).
	ErrUnknownKID = errors.New("unknown or expired sealing key")
	// ErrClientKeyInvalid: response_sealing_key is malformed, too long, of
	// an unsupported suite, or its public key does not parse.
	ErrClientKeyInvalid = errors.New("invalid response sealing key")
	// ErrUnsupportedSuite: a KEM, KDF or AEAD id other than the two
	// suites above. Wrapped by *SuiteError.
	ErrUnsupportedSuite = errors.New("unsupported HPKE suite")
	// ErrKeyFile: the payload-sealing KeySet (keys.json) cannot be used.
	ErrKeyFile = errors.New("invalid sealing key set")
	// ErrNoKeys: a ring would hold no key at all.
	ErrNoKeys = errors.New("no sealing keys")
)

// Code returns the contract's error code for err: "seal_invalid",
// "sealing_kid_unknown", or "" when err is neither.
func Code(err error) string {
	switch {
	case errors.Is(err, ErrUnknownKID):
		return "sealing_kid_unknown"
	case errors.Is(err, ErrSealInvalid):
		return "seal_invalid"
	}
	return ""
}

// SuiteError reports a refused suite. It matches ErrUnsupportedSuite with
// errors.Is. The ids are bounded integers, so naming them echoes nothing
// harmful and helps whoever debugs an old client.
type SuiteError struct {
	KEMID, KDFID, AEADID uint16
}

func (e *SuiteError) Error() string {
	return fmt.Sprintf("%v: kem 0x%04x, kdf 0x%04x, aead 0x%04x (want kem 0x%04x or 0x%04x, kdf 0x%04x, aead 0x%04x)",
		ErrUnsupportedSuite, e.KEMID, e.KDFID, e.AEADID, KEMXWing, KEMX25519, KDFHKDFSHA256, AEADAES256GCM)
}

// Is makes errors.Is(err, ErrUnsupportedSuite) true.
func (e *SuiteError) Is(target error) bool { return target == ErrUnsupportedSuite }

// suite is one accepted ciphersuite with the sizes needed to split and
// bound wire values (hpke does not export them).
type suite struct {
	kem  hpke.KEM
	kdf  hpke.KDF
	aead hpke.AEAD
	// encSize is Nenc (RFC 9180 §7.1; draft-ietf-hpke-pq for X-Wing).
	encSize int
	// pubSize is Npk, privSize Nsk (the X-Wing seed, or the X25519 scalar).
	pubSize, privSize int
	// algorithm is the KEM's name in a KeySet (keyset.XWing, keyset.X25519).
	algorithm string
}

// aeadTagSize is Nt of AES-256-GCM (RFC 9180 §7.3): the shortest
// ciphertext, that of an empty plaintext.
const aeadTagSize = 16

var (
	suiteXWing = &suite{
		kem: hpke.MLKEM768X25519(), kdf: hpke.HKDFSHA256(), aead: hpke.AES256GCM(),
		// ML-KEM-768 ciphertext (1088) || X25519 ephemeral share (32).
		encSize: 1088 + 32,
		// ML-KEM-768 encapsulation key (1184) || X25519 public key (32).
		pubSize: 1184 + 32,
		// X-Wing private keys are a 32-byte seed that expands to both halves.
		privSize:  32,
		algorithm: keyset.XWing,
	}
	suiteX25519 = &suite{
		kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(), aead: hpke.AES256GCM(),
		encSize: 32, pubSize: 32, privSize: 32,
		algorithm: keyset.X25519,
	}
)

// suiteFor returns the accepted suite for the three ids, or a *SuiteError.
func suiteFor(kemID, kdfID, aeadID uint16) (*suite, error) {
	if kdfID == KDFHKDFSHA256 && aeadID == AEADAES256GCM {
		switch kemID {
		case KEMXWing:
			return suiteXWing, nil
		case KEMX25519:
			return suiteX25519, nil
		}
	}
	return nil, &SuiteError{KEMID: kemID, KDFID: kdfID, AEADID: aeadID}
}
