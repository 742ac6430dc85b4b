package dpop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// privateJWKMembers are the JWK members that carry private or secret key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2). A proof's jwk must
// be a public key (RFC 9449 §4.2 "MUST NOT contain a private key"): a client
// that leaks its private key in a header is broken, and accepting it would
// teach clients that this is fine.
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// parsePublicJWK parses the proof's "jwk" header: an EC P-256 public key,
// the only kind of key ES256 can verify with. The point is checked to be on
// the curve (ecdsa.ParseUncompressedPublicKey does that), so an invalid-curve
// key never reaches signature verification.
func parsePublicJWK(raw json.RawMessage) (*ecdsa.PublicKey, error) {
	m, err := parseObject(raw)
	if err != nil {
		return nil, errors.New("not a JSON object")
	}
	for _, name := range privateJWKMembers {
		if _, ok := m[name]; ok {
			return nil, errors.New("contains private key material")
		}
	}
	member := func(name string) (string, error) {
		var s string
		v, ok := m[name]
		if !ok || len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
			return "", errors.New(name + " is missing or not a string")
		}
		return s, nil
	}
	if kty, err := member("kty"); err != nil {
		return nil, err
	} else if kty != "EC" {
		return nil, errors.New("kty must be EC")
	}
	if crv, err := member("crv"); err != nil {
		return nil, err
	} else if crv != "P-256" {
		return nil, errors.New("crv must be P-256")
	}
	x, err := member("x")
	if err != nil {
		return nil, err
	}
	y, err := member("y")
	if err != nil {
		return nil, err
	}
	// RFC 7518 §6.2.1.2-3: x and y are the full 32-byte coordinates.
	xb, err := decodeSegment(x)
	if err != nil || len(xb) != 32 {
		return nil, errors.New("x is not 32 bytes of base64url")
	}
	yb, err := decodeSegment(y)
	if err != nil || len(yb) != 32 {
		return nil, errors.New("y is not 32 bytes of base64url")
	}
	point := make([]byte, 0, 65)
	point = append(point, 4) // SEC 1 §2.3.3 uncompressed point
	point = append(point, xb...)
	point = append(point, yb...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, errors.New("not a point on P-256")
	}
	return pub, nil
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint (unpadded base64url) of
// an EC P-256 public key: the value of cnf.jkt in a DPoP-bound token (RFC
// 9449 §6.1) and the kid Strongroom gives its signing keys.
//
// The hash input is the canonical JWK of RFC 7638 §3.2-3.3: the required
// members only (crv, kty, x, y), in lexicographic order, no whitespace, x and
// y as full-length coordinates. It returns "" for a nil key or a key on
// another curve, which never equals a real thumbprint.
func Thumbprint(pub *ecdsa.PublicKey) string {
	if pub == nil || pub.Curve != elliptic.P256() {
		return ""
	}
	point, err := pub.Bytes()
	if err != nil || len(point) != 65 {
		return ""
	}
	enc := base64.RawURLEncoding
	// Every member value is base64url or a fixed ASCII string, so no JSON
	// escaping is ever needed and the bytes can be built directly.
	canonical := `{"crv":"P-256","kty":"EC","x":"` + enc.EncodeToString(point[1:33]) +
		`","y":"` + enc.EncodeToString(point[33:]) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return enc.EncodeToString(sum[:])
}

var (
	errNotObject       = errors.New("not a single JSON object")
	errDuplicateMember = errors.New("duplicate member name")
)

// parseObject parses a JSON object into its members, refusing duplicate
// member names (RFC 7515 §4 and RFC 7519 §4 allow a parser to refuse
// them; refusing is the only choice that makes every JOSE library
// see the same header and claims) and anything after the closing brace. Its
// errors never contain input bytes.
//
// json.Unmarshal checks the syntax of the whole input and keeps the last of
// duplicate members; countMembers then counts the members as written, so a
// name that occurs twice (however it is escaped: both decode to one map
// key) leaves the map with fewer entries than members. This is several
// times cheaper than walking the object with json.Decoder tokens, and
// FuzzParseObject holds it to that reference.
func parseObject(data []byte) (map[string]json.RawMessage, error) {
	if i := skipSpace(data, 0); i >= len(data) || data[i] != '{' {
		// Also keeps out "null", which Unmarshal would take as a nil map.
		return nil, errNotObject
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, errNotObject
	}
	if countMembers(data) != len(m) {
		return nil, errDuplicateMember
	}
	return m, nil
}

// countMembers counts the members of the top-level object of data, which
// must be valid JSON: each member has exactly one name separator ':' at
// depth 1 outside strings.
func countMembers(data []byte) int {
	n, depth, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped character cannot end the string
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ':':
			if depth == 1 {
				n++
			}
		}
	}
	return n
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace (RFC 8259 §2).
func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}
