package passcode

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Params are Argon2id cost parameters (RFC 9106 §3.1).
type Params struct {
	// Memory is the memory cost m in KiB. One hash allocates this much.
	Memory uint32
	// Time is the number of passes t over the memory.
	Time uint32
	// Threads is the parallelism p: lanes, each computed by its own
	// goroutine. It does not change the memory used.
	Threads uint8
	// KeyLen is the length of the stored hash in bytes.
	KeyLen uint32
}

// DefaultParams are the OWASP Password Storage Cheat Sheet's recommended
// Argon2id configuration: m = 19 MiB, t = 2, p = 1, with a 32-byte output
// (https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html).
// See the package comment for why this and not a larger RFC 9106 setting.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32}

// TestParams are cheap parameters for tests only: m = 64 KiB, t = 1, p = 1.
// They offer no meaningful resistance to offline guessing.
var TestParams = Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}

func (p Params) String() string {
	return fmt.Sprintf("argon2id m=%d KiB, t=%d, p=%d, keyLen=%d", p.Memory, p.Time, p.Threads, p.KeyLen)
}

// Ceilings on parameters, both configured and read back from stored PHC
// strings. The stored ones matter most: verification runs whatever cost a
// row names, so without ceilings one tampered row (m = 4 TiB, t = 2^32-1)
// is a denial of service the moment someone guesses that device's passcode.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 10
	maxThreads   = 16
	saltLen      = 16 // RFC 9106 §3.1: 128 bits is sufficient for password hashing
	minSaltLen   = 16
	maxSaltLen   = 64
	minHashLen   = 16 // shorter outputs make accidental matches plausible
	maxHashLen   = 64
	maxPHCLen    = 256 // a valid string within the ceilings is < 220 bytes
	phcAlgorithm = "argon2id"
	phcVersion   = 0x13 // 19, the only version golang.org/x/crypto/argon2 implements
)

var (
	// ErrMalformed reports a stored verifier that is not a well-formed
	// Argon2id PHC string or whose parameters exceed the ceilings. Nothing
	// was evaluated; the caller should treat it as a server-side fault of
	// that record, not as a wrong passcode.
	ErrMalformed = errors.New("passcode: malformed verifier")
	// ErrUnknownPepper reports a verifier made with a pepper that is not
	// configured (any more). Nothing was evaluated.
	ErrUnknownPepper = errors.New("passcode: unknown pepper id")
)

// limits are the ceilings a Hasher enforces; a field so that tests (the
// fuzz target) can lower them and stay fast.
type limits struct {
	maxMemory uint32
	maxTime   uint32
	maxThread uint8
}

var defaultLimits = limits{maxMemory: maxMemoryKiB, maxTime: maxTime, maxThread: maxThreads}

// check validates cost parameters against RFC 9106's minimums and the
// ceilings. The messages name the field, never a value read from storage.
func (l limits) check(m, t uint32, p uint8) error {
	switch {
	case p < 1 || p > l.maxThread:
		return fmt.Errorf("%w: parallelism out of range", ErrMalformed)
	case t < 1 || t > l.maxTime:
		return fmt.Errorf("%w: time cost out of range", ErrMalformed)
	case m < 8*uint32(p) || m > l.maxMemory: // RFC 9106 §3.1: m ≥ 8p KiB
		return fmt.Errorf("%w: memory cost out of range", ErrMalformed)
	}
	return nil
}

// phc is a parsed "$argon2id$v=19$m=..,t=..,p=..$salt$hash" string.
type phc struct {
	memory, time uint32
	threads      uint8
	salt, hash   []byte
}

var b64 = base64.RawStdEncoding.Strict()

func (v phc) encode() string {
	var b strings.Builder
	b.Grow(64 + b64.EncodedLen(len(v.salt)) + b64.EncodedLen(len(v.hash)))
	b.WriteString("$" + phcAlgorithm + "$v=")
	b.WriteString(strconv.Itoa(phcVersion))
	b.WriteString("$m=")
	b.WriteString(strconv.FormatUint(uint64(v.memory), 10))
	b.WriteString(",t=")
	b.WriteString(strconv.FormatUint(uint64(v.time), 10))
	b.WriteString(",p=")
	b.WriteString(strconv.FormatUint(uint64(v.threads), 10))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(v.salt))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(v.hash))
	return b.String()
}

// parsePHC parses the canonical form only: exactly the fields and order
// that encode writes, decimal numbers without sign or leading zeros,
// unpadded standard base64 with zero trailing bits and no line breaks. Accepting a single
// spelling means a verifier has exactly one representation, and the parser
// has little surface. Every error wraps ErrMalformed.
func (l limits) parsePHC(s string) (phc, error) {
	var v phc
	if len(s) > maxPHCLen {
		return v, fmt.Errorf("%w: too long", ErrMalformed)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return v, fmt.Errorf("%w: wrong number of fields", ErrMalformed)
	}
	if parts[1] != phcAlgorithm {
		return v, fmt.Errorf("%w: algorithm is not argon2id", ErrMalformed)
	}
	if parts[2] != "v="+strconv.Itoa(phcVersion) {
		return v, fmt.Errorf("%w: unsupported argon2 version", ErrMalformed)
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return v, fmt.Errorf("%w: parameters are not m,t,p", ErrMalformed)
	}
	m, okM := parseParam(kv[0], "m=")
	t, okT := parseParam(kv[1], "t=")
	p, okP := parseParam(kv[2], "p=")
	if !okM || !okT || !okP || p > 255 {
		return v, fmt.Errorf("%w: parameters are not m,t,p", ErrMalformed)
	}
	if err := l.check(m, t, uint8(p)); err != nil {
		return v, err
	}
	v.memory, v.time, v.threads = m, t, uint8(p)
	var err error
	if !isB64(parts[4]) {
		return phc{}, fmt.Errorf("%w: salt is not base64", ErrMalformed)
	}
	if v.salt, err = b64.DecodeString(parts[4]); err != nil {
		return phc{}, fmt.Errorf("%w: salt is not base64", ErrMalformed)
	}
	if len(v.salt) < minSaltLen || len(v.salt) > maxSaltLen {
		return phc{}, fmt.Errorf("%w: salt length out of range", ErrMalformed)
	}
	if !isB64(parts[5]) {
		return phc{}, fmt.Errorf("%w: hash is not base64", ErrMalformed)
	}
	if v.hash, err = b64.DecodeString(parts[5]); err != nil {
		return phc{}, fmt.Errorf("%w: hash is not base64", ErrMalformed)
	}
	if len(v.hash) < minHashLen || len(v.hash) > maxHashLen {
		return phc{}, fmt.Errorf("%w: hash length out of range", ErrMalformed)
	}
	return v, nil
}

// isB64 reports whether s uses only the standard base64 alphabet.
// encoding/base64 silently skips '\r' and '\n' even in Strict mode, which
// would give one verifier several spellings.
func isB64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// parseParam parses "<prefix><canonical decimal uint32>".
func parseParam(s, prefix string) (uint32, bool) {
	d, ok := strings.CutPrefix(s, prefix)
	if !ok || d == "" || len(d) > 10 || (d[0] == '0' && len(d) > 1) {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(d, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}
