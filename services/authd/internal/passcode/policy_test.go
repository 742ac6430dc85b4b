package passcode

import (
	"errors"
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	cases := []struct {
		policy Policy
		in     string
		ok     bool
	}{
		{Policy{}, "123456", true},
		{Policy{Digits: 6}, "000000", true},
		{Policy{Digits: 6}, "999999", true},
		{Policy{Digits: 8}, "12345678", true},
		{Policy{Digits: 4}, "1234", true},
		{Policy{}, "", false},
		{Policy{}, "12345", false},
		{Policy{}, "1234567", false},
		{Policy{Digits: 8}, "123456", false},
		{Policy{}, "12345a", false},
		{Policy{}, "abcdef", false},
		{Policy{}, " 12345", false},
		{Policy{}, "12345 ", false},
		{Policy{}, "123 456", false},
		{Policy{}, "12345\n", false},
		{Policy{}, "123456\n", false},
		{Policy{}, "\t12345", false},
		{Policy{}, "123\x0045", false},
		{Policy{}, "+12345", false},
		{Policy{}, "-12345", false},
		{Policy{}, "1.2345", false},
		{Policy{}, "12,345", false},
		{Policy{}, "1e5000", false},
		{Policy{}, "١٢٣٤٥٦", false},                   // Arabic-Indic digits
		{Policy{}, "1234\u0663", false},               // 6 bytes: 4 ASCII digits + '٣' (2 bytes)
		{Policy{}, "12345\u0663", false},              // 6 characters, 7 bytes
		{Policy{}, "１２３４５６", false},                   // fullwidth digits
		{Policy{}, "१२३४५६", false},                   // Devanagari digits
		{Policy{}, "12345\u00b2", false},              // superscript two
		{Policy{}, "1234\u00a05", false},              // no-break space
		{Policy{}, "123\u200b456", false},             // zero-width space
		{Policy{}, "\ufeff12345", false},              // BOM
		{Policy{}, "\xff12345", false},                // invalid UTF-8
		{Policy{}, "12345\xc0", false},                // truncated UTF-8
		{Policy{}, "\x3012345", true},                 // '\x30' is '0'
		{Policy{}, "\xb0\xb1\xb2\xb3\xb4\xb5", false}, // high-bit "digits"
		{Policy{}, strings.Repeat("1", 10000), false},
		{Policy{Digits: -1}, "123456", false},
		{Policy{Digits: 3}, "123", false},
		{Policy{Digits: 65}, strings.Repeat("1", 65), false},
	}
	for _, c := range cases {
		err := c.policy.Validate([]byte(c.in))
		if c.ok && err != nil {
			t.Errorf("Policy%+v.Validate(%q) = %v, want nil", c.policy, c.in, err)
		}
		if !c.ok {
			if !errors.Is(err, ErrPolicy) {
				t.Errorf("Policy%+v.Validate(%q) = %v, want ErrPolicy", c.policy, c.in, err)
			} else if len(c.in) >= 4 && strings.Contains(err.Error(), c.in) {
				t.Errorf("error %q echoes the passcode", err)
			}
		}
	}
	if err := (Policy{}).Validate(nil); !errors.Is(err, ErrPolicy) {
		t.Errorf("nil passcode: %v", err)
	}
}
