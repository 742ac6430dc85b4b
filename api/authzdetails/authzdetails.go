// Package authzdetails is RFC 9396 authorization details as Strongroom
// accepts them in a biometric assertion and puts them in an access token:
// what the user confirmed with their biometric (a payment of this amount to
// this creditor), for the API that executes it to check (PSD2 dynamic
// linking). authd validates details with Parse before it issues a token;
// resource servers read them back with Parse too.
//
// The token carries the details exactly as the assertion did (the same JSON
// values, whitespace aside), so an API can compare them field by field with
// the operation it is asked to execute.
package authzdetails

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"unicode"
	"unicode/utf8"
)

// TypePayment is the one authorization details type served today.
const TypePayment = "payment"

// Types are the types authd accepts (authorization_details_types_supported).
var Types = []string{TypePayment}

// Limits keep a hostile assertion small.
const (
	MaxBytes   = 4 << 10
	MaxEntries = 8
	// MaxText is the longest creditor name or reference (the SEPA limit).
	MaxText = 140
)

// Payment is one payment the user confirms (type "payment").
type Payment struct {
	Type string `json:"type"`
	// Amount is a decimal string ("12.50"): exact, never a float.
	Amount string `json:"amount"`
	// Currency is an ISO 4217 code ("EUR").
	Currency string   `json:"currency"`
	Creditor Creditor `json:"creditor"`
	// Reference is the remittance information, if any.
	Reference string `json:"reference,omitempty"`
}

// Creditor is who is paid.
type Creditor struct {
	Name string `json:"name"`
	// IBAN is the creditor's account, if given (ISO 13616, no spaces).
	IBAN string `json:"iban,omitempty"`
}

// Details are parsed authorization details.
type Details struct {
	// Raw is the compact JSON array, exactly the values that were parsed.
	Raw      json.RawMessage
	Payments []Payment
}

// Types returns the type of each entry, in order.
func (d *Details) Types() []string {
	out := make([]string, len(d.Payments))
	for i, p := range d.Payments {
		out[i] = p.Type
	}
	return out
}

// ErrInvalid is wrapped by every refusal of Parse.
var ErrInvalid = errors.New("invalid authorization_details")

var (
	amountRE   = regexp.MustCompile(`^(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	ibanRE     = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)
	zeroRE     = regexp.MustCompile(`^0(\.0+)?$`)
)

// Parse checks authorization details (an RFC 9396 JSON array) and returns
// them with their compact form. Every entry must be of a known type with
// exactly that type's members: an unknown type or member is refused, never
// passed on, because an API might otherwise trust a detail nobody checked.
func Parse(raw []byte) (*Details, error) {
	if len(raw) > MaxBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxBytes)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil || entries == nil {
		return nil, fmt.Errorf("%w: not a JSON array", ErrInvalid)
	}
	if len(entries) == 0 || len(entries) > MaxEntries {
		return nil, fmt.Errorf("%w: want 1 to %d entries", ErrInvalid, MaxEntries)
	}
	d := &Details{}
	for i, e := range entries {
		var head struct {
			Type *string `json:"type"`
		}
		if err := json.Unmarshal(e, &head); err != nil || head.Type == nil {
			return nil, fmt.Errorf("%w: entry %d: an object with a type", ErrInvalid, i)
		}
		if *head.Type != TypePayment {
			return nil, fmt.Errorf("%w: entry %d: unknown type", ErrInvalid, i)
		}
		p, err := parsePayment(e)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrInvalid, i, err)
		}
		d.Payments = append(d.Payments, *p)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	d.Raw = buf.Bytes()
	return d, nil
}

func parsePayment(raw json.RawMessage) (*Payment, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p Payment
	if err := dec.Decode(&p); err != nil {
		return nil, errors.New("a payment has type, amount, currency, creditor and optionally reference")
	}
	if err := duplicateMembers(raw); err != nil {
		return nil, err
	}
	// encoding/json matches member names in any case: "AMOUNT" would fill
	// Amount. Exactly the canonical members, in their own case, may appear.
	canonical, _ := json.Marshal(p)
	var got, want map[string]any
	if json.Unmarshal(raw, &got) != nil || json.Unmarshal(canonical, &want) != nil || !reflect.DeepEqual(got, want) {
		return nil, errors.New("members must be named exactly as documented")
	}
	switch {
	case !amountRE.MatchString(p.Amount) || zeroRE.MatchString(p.Amount):
		return nil, errors.New(`amount must be a positive decimal string such as "12.50"`)
	case !currencyRE.MatchString(p.Currency):
		return nil, errors.New("currency must be an ISO 4217 code")
	case !text(p.Creditor.Name, true):
		return nil, fmt.Errorf("creditor.name must be 1 to %d printable characters", MaxText)
	case p.Creditor.IBAN != "" && !ibanRE.MatchString(p.Creditor.IBAN):
		return nil, errors.New("creditor.iban must be an IBAN without spaces")
	case !text(p.Reference, false):
		return nil, fmt.Errorf("reference must be at most %d printable characters", MaxText)
	}
	return &p, nil
}

// duplicateMembers refuses an object that names a member twice (at any
// depth): encoding/json keeps the last, and a reader that keeps the first
// would see another payment than the one checked.
func duplicateMembers(raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error Decode already refused
		}
		top := (*frame)(nil)
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
			case '[':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.expect {
				if top.keys[t] {
					return errors.New("a member is named twice")
				}
				top.keys[t] = true
				top.expect = false
				continue
			}
			if top != nil && top.object {
				top.expect = true
			}
		default:
			if top != nil && top.object {
				top.expect = true
			}
		}
	}
}

// text reports whether s is printable text of at most MaxText characters
// (and not empty, when required). Control characters, line and paragraph
// separators and every format character (Unicode Cf: bidirectional marks,
// overrides and isolates, zero-width characters, the BOM) are refused: they
// could show the user one creditor and an API another, or make two names
// that look alike compare different.
func text(s string, required bool) bool {
	n := utf8.RuneCountInString(s)
	if n > MaxText || (required && n == 0) {
		return false
	}
	for _, r := range s {
		switch {
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			return false
		case r == utf8.RuneError:
			// encoding/json reads a lone surrogate escape ("\ud800") as
			// U+FFFD while Raw keeps the escape, which another reader
			// keeps or refuses: Raw would not be the value checked.
			return false
		}
	}
	return true
}
