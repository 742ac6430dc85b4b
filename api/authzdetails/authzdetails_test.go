package authzdetails_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"strongroom.dev/api/authzdetails"
)

// The documented rules, written out again here rather than borrowed from
// the package, so that a loosened regexp in authzdetails.go fails a test.
var (
	wantAmount   = regexp.MustCompile(`^(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$`)
	wantZero     = regexp.MustCompile(`^0(\.0+)?$`)
	wantCurrency = regexp.MustCompile(`^[A-Z]{3}$`)
	wantIBAN     = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`)
)

const (
	iban = "DE89370400440532013000"
	// payment is a valid entry, the base the hostile cases are made from.
	payment = `{"type":"payment","amount":"12.50","currency":"EUR","creditor":{"name":"ACME Ltd","iban":"` + iban + `"},"reference":"INV-42"}`
	// minimal is a valid entry with neither iban nor reference.
	minimal = `{"type":"payment","amount":"1","currency":"USD","creditor":{"name":"Bob"}}`
)

// entry is payment with its amount, currency and creditor replaced: the
// hostile tables change one thing at a time.
func entry(amount, currency, creditor string) string {
	return `{"type":"payment","amount":` + amount + `,"currency":` + currency + `,"creditor":` + creditor + `}`
}

// quoted is s as a JSON string.
func quoted(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// repeat is n copies of e as a JSON array.
func repeat(e string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(e+",", n), ",") + "]"
}

// padded is a valid array of exactly size bytes: payment followed by
// insignificant whitespace, so size alone decides the outcome.
func padded(t *testing.T, size int) string {
	t.Helper()
	s := "[" + payment
	if len(s)+1 > size {
		t.Fatalf("cannot pad to %d bytes", size)
	}
	return s + strings.Repeat(" ", size-len(s)-1) + "]"
}

func acme() authzdetails.Payment {
	return authzdetails.Payment{Type: "payment", Amount: "12.50", Currency: "EUR",
		Creditor: authzdetails.Creditor{Name: "ACME Ltd", IBAN: iban}, Reference: "INV-42"}
}

func bob() authzdetails.Payment {
	return authzdetails.Payment{Type: "payment", Amount: "1", Currency: "USD", Creditor: authzdetails.Creditor{Name: "Bob"}}
}

func withAmount(p authzdetails.Payment, amount string) authzdetails.Payment {
	p.Amount = amount
	return p
}

func TestParseAccepts(t *testing.T) {
	long := strings.Repeat("é", authzdetails.MaxText) // 140 runes, 280 bytes
	cases := []struct {
		name string
		in   string
		want []authzdetails.Payment
		// raw is the expected Raw when it differs from the input.
		raw string
	}{
		{"one payment with every member", "[" + payment + "]", []authzdetails.Payment{acme()}, ""},
		{"minimal: no iban, no reference", "[" + minimal + "]", []authzdetails.Payment{bob()}, ""},
		{"two payments keep their order", "[" + minimal + "," + payment + "]", []authzdetails.Payment{bob(), acme()}, ""},
		{"eight payments, the most", repeat(minimal, authzdetails.MaxEntries),
			[]authzdetails.Payment{bob(), bob(), bob(), bob(), bob(), bob(), bob(), bob()}, ""},
		{"members in another order",
			`[{"creditor":{"iban":"` + iban + `","name":"ACME Ltd"},"reference":"INV-42","currency":"EUR","amount":"12.50","type":"payment"}]`,
			[]authzdetails.Payment{acme()}, ""},
		{"whitespace is compacted away",
			"[\n  {\"type\" : \"payment\",\t\"amount\": \"1\",\r\n \"currency\":\"USD\", \"creditor\": { \"name\": \"Bob\" } }\n]\n",
			[]authzdetails.Payment{bob()}, "[" + minimal + "]"},
		{"smallest amount", "[" + entry(`"0.0001"`, `"EUR"`, `{"name":"Bob"}`) + "]",
			[]authzdetails.Payment{{Type: "payment", Amount: "0.0001", Currency: "EUR", Creditor: authzdetails.Creditor{Name: "Bob"}}}, ""},
		{"zero integer part", "[" + entry(`"0.5"`, `"USD"`, `{"name":"Bob"}`) + "]", []authzdetails.Payment{withAmount(bob(), "0.5")}, ""},
		{"trailing zero decimals", "[" + entry(`"10.00"`, `"USD"`, `{"name":"Bob"}`) + "]", []authzdetails.Payment{withAmount(bob(), "10.00")}, ""},
		{"largest amount: 15 digits and 4 decimals", "[" + entry(`"999999999999999.9999"`, `"USD"`, `{"name":"Bob"}`) + "]",
			[]authzdetails.Payment{withAmount(bob(), "999999999999999.9999")}, ""},
		{"name of exactly 140 runes", "[" + entry(`"1"`, `"USD"`, `{"name":"`+long+`"}`) + "]",
			[]authzdetails.Payment{{Type: "payment", Amount: "1", Currency: "USD", Creditor: authzdetails.Creditor{Name: long}}}, ""},
		{"reference of exactly 140 runes",
			`[{"type":"payment","amount":"1","currency":"USD","creditor":{"name":"Bob"},"reference":"` + long + `"}]`,
			[]authzdetails.Payment{{Type: "payment", Amount: "1", Currency: "USD", Creditor: authzdetails.Creditor{Name: "Bob"}, Reference: long}}, ""},
		{"non-ASCII name", "[" + entry(`"1"`, `"USD"`, `{"name":"Zoë Müller 株式会社"}`) + "]",
			[]authzdetails.Payment{{Type: "payment", Amount: "1", Currency: "USD", Creditor: authzdetails.Creditor{Name: "Zoë Müller 株式会社"}}}, ""},
		// An escape is the same JSON value: Raw keeps it as written, the
		// parsed payment has the character.
		{"escaped character in a name", "[" + entry(`"1"`, `"USD"`, `{"name":"Caf\u00e9"}`) + "]",
			[]authzdetails.Payment{{Type: "payment", Amount: "1", Currency: "USD", Creditor: authzdetails.Creditor{Name: "Café"}}}, ""},
		{"escaped surrogate pair in a name", "[" + entry(`"1"`, `"USD"`, `{"name":"Bob \ud83d\ude00"}`) + "]",
			[]authzdetails.Payment{{Type: "payment", Amount: "1", Currency: "USD", Creditor: authzdetails.Creditor{Name: "Bob 😀"}}}, ""},
		{"longest IBAN", "[" + entry(`"1"`, `"USD"`, `{"name":"Bob","iban":"MT`+strings.Repeat("9", 32)+`"}`) + "]",
			[]authzdetails.Payment{{Type: "payment", Amount: "1", Currency: "USD",
				Creditor: authzdetails.Creditor{Name: "Bob", IBAN: "MT" + strings.Repeat("9", 32)}}}, ""},
		{"exactly MaxBytes", padded(t, authzdetails.MaxBytes), []authzdetails.Payment{acme()}, "[" + payment + "]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := authzdetails.Parse([]byte(c.in))
			if err != nil {
				t.Fatalf("Parse(%s): %v", c.in, err)
			}
			if !reflect.DeepEqual(d.Payments, c.want) {
				t.Fatalf("Payments = %+v, want %+v", d.Payments, c.want)
			}
			raw := c.raw
			if raw == "" {
				raw = c.in
			}
			if string(d.Raw) != raw {
				t.Fatalf("Raw = %s, want %s", d.Raw, raw)
			}
			types := d.Types()
			if len(types) != len(c.want) {
				t.Fatalf("Types() = %v for %d payments", types, len(c.want))
			}
			for i, typ := range types {
				if typ != authzdetails.TypePayment {
					t.Fatalf("Types()[%d] = %q", i, typ)
				}
			}
		})
	}
}

// TestTypes checks Types follows the payments, not a constant.
func TestTypes(t *testing.T) {
	d := &authzdetails.Details{Payments: []authzdetails.Payment{{Type: "a"}, {Type: "b"}}}
	if got := d.Types(); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("Types() = %v", got)
	}
	if got := (&authzdetails.Details{}).Types(); len(got) != 0 {
		t.Fatalf("Types() of nothing = %v", got)
	}
	if !reflect.DeepEqual(authzdetails.Types, []string{"payment"}) {
		t.Fatalf("supported types = %v", authzdetails.Types)
	}
}

// TestParseRawIsACopy checks Raw does not alias the caller's buffer: a
// caller reusing its buffer must not change the details a token carries.
func TestParseRawIsACopy(t *testing.T) {
	in := []byte("[" + payment + "]")
	d, err := authzdetails.Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		in[i] = 'x'
	}
	if string(d.Raw) != "["+payment+"]" {
		t.Fatalf("Raw changed with the input: %s", d.Raw)
	}
}

func TestParseRefuses(t *testing.T) {
	bob := `{"name":"Bob"}`
	name := func(s string) string { return entry(`"1"`, `"EUR"`, `{"name":`+s+`}`) }
	ibanOf := func(s string) string { return entry(`"1"`, `"EUR"`, `{"name":"Bob","iban":`+s+`}`) }
	amount := func(s string) string { return entry(s, `"EUR"`, bob) }
	currency := func(s string) string { return entry(`"1"`, s, bob) }
	reference := func(s string) string {
		return `{"type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"},"reference":` + s + `}`
	}
	cases := []struct{ name, in string }{
		// Shape.
		{"empty input", ``},
		{"whitespace only", ` `},
		{"null", `null`},
		{"an object, not an array", payment},
		{"a string", `"payment"`},
		{"a number", `1`},
		{"empty array", `[]`},
		{"nine entries", repeat(minimal, authzdetails.MaxEntries+1)},
		{"one byte over MaxBytes", padded(t, authzdetails.MaxBytes+1)},
		{"invalid UTF-8 in a name", "[" + name("\"Bob\xff\"") + "]"},
		{"invalid UTF-8 between values", "[" + minimal + "\xff]"},
		{"not JSON", `[{"type":"payment",}]`},
		{"unterminated", "[" + minimal},
		{"trailing data", "[" + minimal + "] x"},
		{"two arrays", "[" + minimal + "][" + minimal + "]"},
		{"entry is a string", `["payment"]`},
		{"entry is a number", `[1]`},
		{"entry is null", `[null]`},
		{"entry is an array", "[[" + minimal + "]]"},
		{"a valid entry then a bad one", "[" + minimal + ",1]"},
		{"a valid entry then an unknown type", "[" + minimal + `,{"type":"account_information"}]`},
		// Type.
		{"no type", `[{"amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"type null", `[{"type":null,"amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"type is a number", `[{"type":1,"amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"type empty", `[{"type":"","amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"unknown type", `[{"type":"account_information","actions":["read"]}]`},
		{"type in another case", `[{"type":"Payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"TYPE member", `[{"TYPE":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"Type member", `[{"Type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		// Members.
		{"unknown member", `[{"type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"},"locations":["https://x"]}]`},
		{"unknown member in creditor", "[" + entry(`"1"`, `"EUR"`, `{"name":"Bob","bic":"DEUTDEFF"}`) + "]"},
		{"AMOUNT member", `[{"type":"payment","AMOUNT":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"Amount member", `[{"type":"payment","Amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"Amount besides amount", `[{"type":"payment","amount":"1","Amount":"1000","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"Name member in creditor", "[" + entry(`"1"`, `"EUR"`, `{"Name":"Bob"}`) + "]"},
		{"IBAN member in creditor", "[" + entry(`"1"`, `"EUR"`, `{"name":"Bob","IBAN":"`+iban+`"}`) + "]"},
		{"no amount", `[{"type":"payment","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"no currency", `[{"type":"payment","amount":"1","creditor":{"name":"Bob"}}]`},
		// Duplicates: encoding/json keeps the last value, another reader
		// may keep the first.
		{"amount twice, different values", `[{"type":"payment","amount":"1","amount":"1000","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"amount twice, same value", `[{"type":"payment","amount":"1","amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"amount twice, one escaped", `[{"type":"payment","amount":"1","amo\u0075nt":"1000","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"type twice", `[{"type":"payment","type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"}}]`},
		{"creditor twice", `[{"type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Eve"},"creditor":{"name":"Bob"}}]`},
		{"name twice in creditor", "[" + entry(`"1"`, `"EUR"`, `{"name":"Eve","name":"Bob"}`) + "]"},
		{"iban twice in creditor", "[" + entry(`"1"`, `"EUR"`, `{"name":"Bob","iban":"GB82WEST12345698765432","iban":"`+iban+`"}`) + "]"},
		{"reference twice", `[{"type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"},"reference":"a","reference":"b"}]`},
		// Amount.
		{"amount is a JSON number", "[" + amount(`12.5`) + "]"},
		{"amount is an integer number", "[" + amount(`12`) + "]"},
		{"amount null", "[" + amount(`null`) + "]"},
		{"amount is an array", "[" + amount(`["1"]`) + "]"},
		{"amount is an object", "[" + amount(`{"value":"1"}`) + "]"},
		{"amount empty", "[" + amount(`""`) + "]"},
		{"amount 0", "[" + amount(`"0"`) + "]"},
		{"amount 0.00", "[" + amount(`"0.00"`) + "]"},
		{"amount 0.0000", "[" + amount(`"0.0000"`) + "]"},
		{"amount -1", "[" + amount(`"-1"`) + "]"},
		{"amount +1", "[" + amount(`"+1"`) + "]"},
		{"amount 1e3", "[" + amount(`"1e3"`) + "]"},
		{"amount 01.5", "[" + amount(`"01.5"`) + "]"},
		{"amount 00", "[" + amount(`"00"`) + "]"},
		{"amount .5", "[" + amount(`".5"`) + "]"},
		{"amount 1.", "[" + amount(`"1."`) + "]"},
		{"amount with five decimals", "[" + amount(`"1.00001"`) + "]"},
		{"amount with 16 integer digits", "[" + amount(`"1000000000000000"`) + "]"},
		{"amount with a decimal comma", "[" + amount(`"1,50"`) + "]"},
		{"amount with a thousands separator", "[" + amount(`"1,000.50"`) + "]"},
		{"amount with spaces", "[" + amount(`" 1"`) + "]"},
		{"amount with a trailing newline", "[" + amount(`"1\n"`) + "]"},
		{"amount in Arabic-Indic digits", "[" + amount(`"١"`) + "]"},
		{"amount in fullwidth digits", "[" + amount(`"１"`) + "]"},
		{"amount NaN", "[" + amount(`"NaN"`) + "]"},
		{"amount Infinity", "[" + amount(`"Infinity"`) + "]"},
		{"amount hex", "[" + amount(`"0x10"`) + "]"},
		// Currency.
		{"currency lowercase", "[" + currency(`"eur"`) + "]"},
		{"currency four letters", "[" + currency(`"EURO"`) + "]"},
		{"currency two letters", "[" + currency(`"EU"`) + "]"},
		{"currency empty", "[" + currency(`""`) + "]"},
		{"currency with a digit", "[" + currency(`"E1R"`) + "]"},
		{"currency numeric code", "[" + currency(`"978"`) + "]"},
		{"currency null", "[" + currency(`null`) + "]"},
		{"currency is a number", "[" + currency(`978`) + "]"},
		{"currency with a trailing newline", "[" + currency(`"EUR\n"`) + "]"},
		// Creditor.
		{"no creditor", `[{"type":"payment","amount":"1","currency":"EUR"}]`},
		{"creditor null", "[" + entry(`"1"`, `"EUR"`, `null`) + "]"},
		{"creditor is a string", "[" + entry(`"1"`, `"EUR"`, `"Bob"`) + "]"},
		{"creditor is an array", "[" + entry(`"1"`, `"EUR"`, `[{"name":"Bob"}]`) + "]"},
		{"creditor empty", "[" + entry(`"1"`, `"EUR"`, `{}`) + "]"},
		{"name empty", "[" + name(`""`) + "]"},
		{"name null", "[" + name(`null`) + "]"},
		{"name is a number", "[" + name(`1`) + "]"},
		{"name is an array", "[" + name(`["Bob"]`) + "]"},
		{"name of 141 runes", "[" + name(quoted(strings.Repeat("é", authzdetails.MaxText+1))) + "]"},
		{"name with NUL", "[" + name(`"Bob\u0000"`) + "]"},
		{"name with a newline", "[" + name(`"Bob\nEve"`) + "]"},
		{"name with a tab", "[" + name(`"Bob\tEve"`) + "]"},
		{"name with DEL", "[" + name(`"Bob\u007f"`) + "]"},
		{"name with a C1 control", "[" + name(`"Bob\u0085"`) + "]"},
		{"name with a line separator", "[" + name(`"Bob\u2028"`) + "]"},
		{"name with a paragraph separator", "[" + name(`"Bob\u2029"`) + "]"},
		{"name with a BOM", "[" + name(`"\ufeffBob"`) + "]"},
		{"name with U+202E RIGHT-TO-LEFT OVERRIDE", "[" + name(`"Bob\u202eevE"`) + "]"},
		{"name with U+202E written raw", "[" + name("\"Bob\u202eevE\"") + "]"},
		{"name with U+200F RIGHT-TO-LEFT MARK", "[" + name(`"Bob\u200f"`) + "]"},
		{"name with U+200B ZERO WIDTH SPACE", "[" + name(`"Bo\u200bb"`) + "]"},
		{"name with U+061C ARABIC LETTER MARK", "[" + name(`"Bob\u061c"`) + "]"},
		{"name with U+00AD SOFT HYPHEN", "[" + name(`"Bo\u00adb"`) + "]"},
		{"name with U+202A LEFT-TO-RIGHT EMBEDDING", "[" + name(`"\u202aBob"`) + "]"},
		{"name with U+2066 LEFT-TO-RIGHT ISOLATE", "[" + name(`"\u2066Bob"`) + "]"},
		{"name with U+2069 POP DIRECTIONAL ISOLATE", "[" + name(`"Bob\u2069"`) + "]"},
		// encoding/json turns a lone surrogate into U+FFFD while Raw keeps
		// the escape: the API would read another name than the one checked.
		{"name with a lone high surrogate", "[" + name(`"Bob\ud800"`) + "]"},
		{"name with a lone low surrogate", "[" + name(`"\udc00Bob"`) + "]"},
		{"name with surrogates in the wrong order", "[" + name(`"\ude00\ud83d"`) + "]"},
		{"name with U+FFFD", "[" + name(`"Bob\ufffd"`) + "]"},
		{"reference with a lone surrogate", "[" + reference(`"INV\udbff"`) + "]"},
		{"iban with spaces", "[" + ibanOf(`"DE89 3704 0044 0532 0130 00"`) + "]"},
		{"iban lowercase", "[" + ibanOf(`"de89370400440532013000"`) + "]"},
		{"iban too short", "[" + ibanOf(`"DE8937040044"`) + "]"},
		{"iban too long", "[" + ibanOf(`"MT`+strings.Repeat("9", 33)+`"`) + "]"},
		{"iban without check digits", "[" + ibanOf(`"DEXX370400440532013000"`) + "]"},
		{"iban empty string present", "[" + ibanOf(`""`) + "]"},
		{"iban null", "[" + ibanOf(`null`) + "]"},
		{"iban is a number", "[" + ibanOf(`89370400440532013000`) + "]"},
		// Reference.
		{"reference empty string present", "[" + reference(`""`) + "]"},
		{"reference null", "[" + reference(`null`) + "]"},
		{"reference is a number", "[" + reference(`42`) + "]"},
		{"reference of 141 runes", "[" + reference(quoted(strings.Repeat("x", authzdetails.MaxText+1))) + "]"},
		{"reference with a control character", "[" + reference(`"INV\u001b[2J"`) + "]"},
		{"reference with U+202E", "[" + reference(`"INV\u202e24"`) + "]"},
		{"reference is an array", "[" + reference(`["INV-42"]`) + "]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := authzdetails.Parse([]byte(c.in))
			if err == nil {
				t.Fatalf("Parse(%q) accepted: %+v", c.in, d.Payments)
			}
			if !errors.Is(err, authzdetails.ErrInvalid) {
				t.Fatalf("Parse(%q): %v does not wrap ErrInvalid", c.in, err)
			}
			if d != nil {
				t.Fatalf("Parse(%q) returned details with its error", c.in)
			}
		})
	}
}

// TestParseRefusesEveryEntry checks a bad entry is refused wherever it
// stands, not only first.
func TestParseRefusesEveryEntry(t *testing.T) {
	bad := entry(`"0"`, `"EUR"`, `{"name":"Bob"}`)
	for i := range authzdetails.MaxEntries {
		es := make([]string, authzdetails.MaxEntries)
		for j := range es {
			es[j] = minimal
		}
		es[i] = bad
		in := "[" + strings.Join(es, ",") + "]"
		if _, err := authzdetails.Parse([]byte(in)); !errors.Is(err, authzdetails.ErrInvalid) {
			t.Fatalf("bad entry %d: got %v", i, err)
		}
	}
}

// FuzzParse checks, for any input, that Parse does not panic, that every
// refusal wraps ErrInvalid, and that whatever it accepts keeps the
// documented rules and reads back the same from Raw, which is what a token
// carries to the API that executes the payment.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"[" + payment + "]",
		"[" + minimal + "," + payment + "]",
		repeat(minimal, authzdetails.MaxEntries),
		"[\n " + payment + " \n]",
		"[" + entry(`"999999999999999.9999"`, `"USD"`, `{"name":"Caf\u00e9"}`) + "]",
		"[" + entry(`"0.0001"`, `"EUR"`, `{"name":"Bob","iban":"`+iban+`"}`) + "]",
		// Hostile.
		repeat(minimal, authzdetails.MaxEntries+1),
		`[{"type":"payment","amount":"1","amount":"1000","currency":"EUR","creditor":{"name":"Bob"}}]`,
		`[{"type":"payment","AMOUNT":"1","currency":"EUR","creditor":{"name":"Bob"}}]`,
		"[" + entry(`12.5`, `"EUR"`, `{"name":"Bob"}`) + "]",
		"[" + entry(`"01.5"`, `"eur"`, `{"name":"Bob\u202e"}`) + "]",
		"[" + entry(`"1"`, `"EUR"`, `{"name":"Bob","name":"Eve"}`) + "]",
		`[{"type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"},"reference":""}]`,
		`[{"type":"payment","amount":"1","currency":"EUR","creditor":{"name":"Bob"},"reference":null}]`,
		`[{"type":"account_information","actions":["read"]}]`,
		"[" + minimal + "\xff]",
		"[" + entry(`"1"`, `"EUR"`, `{"name":"Bob\ud800"}`) + "]",
		`[[[]]]`, `[null]`, `[]`, `null`, `{}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := authzdetails.Parse(in)
		if err != nil {
			if !errors.Is(err, authzdetails.ErrInvalid) {
				t.Fatalf("Parse(%q): %v does not wrap ErrInvalid", in, err)
			}
			if d != nil {
				t.Fatalf("Parse(%q) returned details with its error", in)
			}
			return
		}
		if n := len(d.Payments); n < 1 || n > authzdetails.MaxEntries {
			t.Fatalf("Parse(%q) accepted %d payments", in, n)
		}
		if !json.Valid(d.Raw) {
			t.Fatalf("Raw %q is not JSON", d.Raw)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, in); err != nil || !bytes.Equal(compact.Bytes(), d.Raw) {
			t.Fatalf("Raw %q is not the compact form of %q", d.Raw, in)
		}
		var entries []json.RawMessage
		if err := json.Unmarshal(d.Raw, &entries); err != nil || len(entries) != len(d.Payments) {
			t.Fatalf("Raw %q does not hold %d entries", d.Raw, len(d.Payments))
		}
		for i, p := range d.Payments {
			checkPayment(t, p)
			// The entry, read as it would be by anyone, is the payment.
			var got authzdetails.Payment
			if err := json.Unmarshal(entries[i], &got); err != nil || got != p {
				t.Fatalf("entry %d of Raw reads as %+v, Parse gave %+v", i, got, p)
			}
		}
		again, err := authzdetails.Parse(d.Raw)
		if err != nil {
			t.Fatalf("Parse(Raw %q): %v", d.Raw, err)
		}
		if !reflect.DeepEqual(again.Payments, d.Payments) || !bytes.Equal(again.Raw, d.Raw) {
			t.Fatalf("Raw %q reads back as %+v, not %+v", d.Raw, again.Payments, d.Payments)
		}
		if types := d.Types(); len(types) != len(d.Payments) {
			t.Fatalf("Types() = %v", types)
		}
	})
}

// checkPayment holds an accepted payment to the documented rules.
func checkPayment(t *testing.T, p authzdetails.Payment) {
	t.Helper()
	switch {
	case p.Type != authzdetails.TypePayment:
		t.Fatalf("accepted type %q", p.Type)
	case !wantAmount.MatchString(p.Amount) || wantZero.MatchString(p.Amount):
		t.Fatalf("accepted amount %q", p.Amount)
	case !wantCurrency.MatchString(p.Currency):
		t.Fatalf("accepted currency %q", p.Currency)
	case p.Creditor.IBAN != "" && !wantIBAN.MatchString(p.Creditor.IBAN):
		t.Fatalf("accepted iban %q", p.Creditor.IBAN)
	}
	checkText(t, "creditor.name", p.Creditor.Name, true)
	checkText(t, "reference", p.Reference, false)
}

// checkText holds a name or reference to the documented text rules.
func checkText(t *testing.T, what, s string, required bool) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("accepted %s %q: not UTF-8", what, s)
	}
	if n := utf8.RuneCountInString(s); n > authzdetails.MaxText || (required && n == 0) {
		t.Fatalf("accepted %s of %d runes", what, n)
	}
	for _, r := range s {
		// The fuzz target's own copy of the rule: C0/C1 controls, line and
		// paragraph separators, format characters (Cf), U+FFFD.
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 ||
			r == utf8.RuneError || unicode.Is(unicode.Cf, r) {
			t.Fatalf("accepted %s %q with %U", what, s, r)
		}
	}
}
