package passcode

import (
	"errors"
	"fmt"
)

// ErrPolicy reports a passcode that the policy does not allow. Errors
// returned by Policy.Validate wrap it and say why, never what was entered.
var ErrPolicy = errors.New("passcode: does not meet the policy")

// Policy is the passcode format: exactly Digits ASCII digits '0'-'9'. The
// zero value means 6 digits (the contract's default).
//
// Only ASCII digits are accepted — not Unicode digits such as '٣' (U+0663)
// or fullwidth '３', not whitespace, signs or separators — because the
// passcode is hashed as bytes: two spellings of "the same" digit would be
// two different passcodes, and an app's keyboard or normalization change
// would lock users out.
type Policy struct{ Digits int }

// Policy length bounds: fewer than 4 digits is not a passcode; the upper
// bound only keeps the check meaningful.
const (
	defaultDigits = 6
	minDigits     = 4
	maxDigits     = 64
)

// Validate returns nil if passcode is exactly p.Digits ASCII digits, and
// otherwise an error wrapping ErrPolicy.
func (p Policy) Validate(passcode []byte) error {
	n := p.Digits
	if n == 0 {
		n = defaultDigits
	}
	if n < minDigits || n > maxDigits {
		return fmt.Errorf("%w: policy misconfigured (Digits must be %d to %d)", ErrPolicy, minDigits, maxDigits)
	}
	if len(passcode) != n {
		return fmt.Errorf("%w: must be exactly %d digits", ErrPolicy, n)
	}
	for _, c := range passcode {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: must be exactly %d digits", ErrPolicy, n)
		}
	}
	return nil
}
