// Package passcode stores and checks device passcodes: Argon2id verifiers
// with a per-verifier random salt and a server pepper, computed on a
// bounded worker pool so that a flood of guesses cannot exhaust memory or
// CPU.
//
// # Construction
//
// For a passcode P, a pepper (ID, K) and a fresh 16-byte random salt S:
//
//	x = HMAC-SHA-256(K, P)                      // 32 bytes
//	h = Argon2id(x, S, m, t, p, keyLen)         // RFC 9106, version 0x13
//	stored: PHC = "$argon2id$v=19$m=<m>,t=<t>,p=<p>$<b64(S)>$<b64(h)>"
//	        PepperID = ID
//
// (b64 is standard base64 without padding, as the PHC string format
// specifies.) Only the PHC string and the pepper's ID are stored; the pepper
// key itself lives outside the database (a mounted secret, a KMS).
//
// Why a pepper, and why this way. A passcode is 6 digits: 10^6 candidates.
// No affordable memory-hard cost makes that space safe offline — at the
// OWASP parameters below one core tries the whole space in hours. The salt
// stops precomputation and makes each device a separate attack, but the
// real protection of a leaked database is the pepper: without K an attacker
// cannot even compute x, and K is 256 bits. Online guessing is stopped by
// the attempt counter (see the contract's "Passcode attempts"), not by the
// hash. Mixing the pepper as an HMAC pre-hash (rather than Argon2's
// optional secret input) keeps the Argon2 step a plain, interoperable
// Argon2id (any RFC 9106 implementation can recompute it from x), keys the
// pepper with a standard PRF, and gives Argon2 a fixed-length input
// whatever the passcode length. The pepper ID stored beside each verifier
// lets the pepper rotate: new verifiers use the first (current) pepper,
// every configured pepper is accepted for verification, and NeedsRehash
// tells the caller to re-create the verifier on the next successful
// sign-in, after which an old pepper can be retired.
//
// # Parameters
//
// DefaultParams are the OWASP Password Storage Cheat Sheet's Argon2id
// recommendation (m = 19 MiB, t = 2, p = 1): the cheapest setting OWASP
// still calls adequate, chosen because every guess costs the server the
// same memory the attacker pays, and the pool below multiplies it by the
// number of workers. (RFC 9106 §4 recommends far larger memory for
// password hashing in general; the pepper, not the memory cost, is what
// protects a 6-digit secret here.) Verification takes the parameters from
// the stored PHC string, so verifiers made under older Params keep working
// when Params change, but refuses stored parameters beyond fixed ceilings
// (memory > 1 GiB, time > 10, threads > 16, salt or hash < 16 bytes) so that
// a tampered or corrupted row cannot turn one verification into a
// denial of service.
//
// # Bounded pool
//
// A Hasher has Workers slots. Hashing needs a Slot, obtained with Acquire
// before the caller counts the attempt: a saturated server answers ErrBusy
// (HTTP 503, Retry-After) without counting and without evaluating. At most
// Queue callers wait for a slot, each for at most MaxWait; anyone beyond
// that is refused at once, so a flood costs a few bytes per refused request
// instead of 19 MiB per guess. Peak hashing memory is therefore about
// Workers × m.
//
// # Secrets in memory and in logs
//
// Passcode-derived buffers this package owns (the HMAC output, the Argon2
// output) are zeroed after use. The Argon2 working memory inside
// golang.org/x/crypto/argon2 cannot be wiped from outside, and the caller
// owns (and should wipe) the passcode slice it passes in. Errors never
// contain a passcode, pepper key, salt or hash; Pepper and Verifier redact
// themselves in fmt (String, GoString, every verb via Format), log/slog
// (LogValue) and encoding/json (MarshalJSON), also when nested in other
// values; store a Verifier's two fields explicitly.
package passcode
