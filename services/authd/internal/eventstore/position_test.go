package eventstore

import (
	"encoding/json"
	"math"
	"testing"
)

func TestParsePosition(t *testing.T) {
	good := []Position{{}, {Tx: 1, Seq: 2}, {Tx: math.MaxUint64, Seq: math.MaxInt64}}
	for _, p := range good {
		got, err := ParsePosition(p.String())
		if err != nil || got != p {
			t.Errorf("round trip %s: %s, %v", p, got, err)
		}
		b, _ := json.Marshal(p)
		var q Position
		if err := json.Unmarshal(b, &q); err != nil || q != p {
			t.Errorf("json round trip %s: %s, %v", b, q, err)
		}
	}
	bad := []string{"", ".", "1", "1.", ".1", "a.b", "1.-1", "-1.1", "1.2.3", "1 .2", "0x1.2",
		"18446744073709551616.1", "1.9223372036854775808", "１.２", "1.2\x00", "99999999999999999999999999999999999999999.1"}
	for _, s := range bad {
		if _, err := ParsePosition(s); err == nil {
			t.Errorf("ParsePosition(%q) accepted", s)
		}
	}
	var p Position
	for _, s := range []string{`1`, `null`, `"x"`, `{}`} {
		if err := json.Unmarshal([]byte(s), &p); err == nil && s != "null" {
			t.Errorf("unmarshal %s accepted", s)
		}
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0.0", "12.34", "18446744073709551615.9223372036854775807", "1.", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		// Whatever parses renders back to a string that parses to the same.
		q, err := ParsePosition(p.String())
		if err != nil || q != p {
			t.Fatalf("%q → %s → %s, %v", s, p, q, err)
		}
	})
}

func TestTraceID(t *testing.T) {
	cases := map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "4bf92f3577b34da6a3ce929d0e0e4736",
		"":        "",
		"garbage": "",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7": "",
	}
	for tp, want := range cases {
		if got := (Metadata{TraceParent: tp}).TraceID(); got != want {
			t.Errorf("TraceID(%q) = %q, want %q", tp, got, want)
		}
	}
}
