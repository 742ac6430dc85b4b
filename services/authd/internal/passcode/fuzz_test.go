package passcode

import (
	"errors"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary PHC strings, pepper ids and passcodes to
// Verify: it never panics, every error is ErrMalformed or ErrUnknownPepper
// and does not echo its input, and whatever parses re-encodes to exactly
// the input (one spelling per verifier). The ceilings are lowered so the
// fuzzer cannot spend its time on legitimately expensive hashes.
func FuzzVerify(f *testing.F) {
	h := newTestHasher(f, Options{})
	h.limits = limits{maxMemory: 256, maxTime: 2, maxThread: 4}
	s := acquire(f, h)
	good := mustNew(f, s, "123456")
	f.Add(good.PHC, good.PepperID, []byte("123456"))
	f.Add(good.PHC, "p1", []byte("123456"))
	f.Add(good.PHC, "nope", []byte("000000"))
	f.Add(strings.Replace(good.PHC, "argon2id", "argon2i", 1), "p2", []byte("123456"))
	f.Add(strings.Replace(good.PHC, "m=64", "m=4294967295", 1), "p2", []byte("123456"))
	f.Add(strings.Replace(good.PHC, "t=1", "t=01", 1), "p2", []byte("1"))
	f.Add(strings.Replace(good.PHC, "p=1", "p=256", 1), "p2", []byte("1"))
	f.Add("$argon2id$v=19$m=64,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "p2", []byte{})
	f.Add(good.PHC+"$", "p2", []byte("123456"))
	f.Add("$$$$$", "", []byte(nil))
	f.Add("", "p2", []byte("123456"))
	f.Fuzz(func(t *testing.T, phc, pepperID string, passcode []byte) {
		ok, err := s.Verify(Verifier{PHC: phc, PepperID: pepperID}, passcode)
		parsed, perr := h.limits.parsePHC(phc)
		switch {
		case err == nil:
			if perr != nil {
				t.Fatalf("Verify accepted what the parser refuses: %v", perr)
			}
			// "123456" is the only passcode any fuzz process ever hashed
			// (each worker process makes its own good verifier).
			if ok && string(passcode) != "123456" {
				t.Fatalf("unexpected match")
			}
		case errors.Is(err, ErrMalformed):
			if perr == nil {
				t.Fatalf("parser accepts, Verify says %v", err)
			}
		case errors.Is(err, ErrUnknownPepper):
			if perr != nil {
				t.Fatalf("unknown pepper reported before a parse error %v", perr)
			}
		default:
			t.Fatalf("untyped error %v", err)
		}
		if err != nil && ok {
			t.Fatal("ok with an error")
		}
		if err != nil && len(phc) >= 8 && strings.Contains(err.Error(), phc) {
			t.Fatalf("error %q echoes the PHC string", err)
		}
		if perr == nil && parsed.encode() != phc {
			t.Fatalf("non-canonical PHC accepted: %q re-encodes to %q", phc, parsed.encode())
		}
		_ = h.NeedsRehash(Verifier{PHC: phc, PepperID: pepperID})
	})
}
