package passcode

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
)

const redacted = "[REDACTED]"

// Pepper is a server secret mixed into every verifier (see the package
// comment). ID names it and is stored beside each verifier so the pepper
// can rotate; Key never leaves the process.
//
// Pepper redacts Key whenever it is formatted, logged or marshalled to
// JSON; only ID is shown.
type Pepper struct {
	// ID is non-secret and ends up in databases and logs: 1 to 64 of
	// A-Z a-z 0-9 . _ : -
	ID string
	// Key is at least 32 bytes from a CSPRNG.
	Key []byte
}

// String returns a redacted description; the key is never included.
func (p Pepper) String() string {
	return "passcode.Pepper{ID: " + strconv.Quote(p.ID) + ", Key: " + redacted + "}"
}

// GoString is String, so %#v redacts too.
func (p Pepper) GoString() string { return p.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x, %d, ...) print the
// redacted form; without it, verbs that bypass String would print the
// fields.
func (p Pepper) Format(f fmt.State, verb rune) { fmt.Fprint(f, p.String()) }

// LogValue implements slog.LogValuer: the key is redacted.
func (p Pepper) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", p.ID), slog.String("key", redacted))
}

// MarshalJSON redacts the key, so a configuration dump cannot leak it.
// (There is deliberately no way to serialize a pepper from this package.)
func (p Pepper) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}{p.ID, redacted})
}

// Verifier is what is stored for a device: the PHC string
// "$argon2id$v=19$m=...,t=...,p=...$<salt>$<hash>" and the ID of the pepper
// it was made with. Both fields are needed to verify.
//
// The PHC string is secret at rest (with the pepper it allows offline
// guessing): Verifier redacts it whenever formatted, logged or marshalled
// to JSON — including as a field of a larger struct, where slog's JSON
// handler would otherwise print it. Store the two fields explicitly (e.g.
// as two columns); do not put them in events or API responses whose data is
// not secret.
type Verifier struct {
	PHC      string
	PepperID string
}

// String returns a redacted description: only the pepper ID is shown.
func (v Verifier) String() string {
	return "passcode.Verifier{PHC: " + redacted + ", PepperID: " + strconv.Quote(v.PepperID) + "}"
}

// GoString is String, so %#v redacts too.
func (v Verifier) GoString() string { return v.String() }

// Format makes every fmt verb print the redacted form.
func (v Verifier) Format(f fmt.State, verb rune) { fmt.Fprint(f, v.String()) }

// LogValue implements slog.LogValuer: the PHC string is redacted.
func (v Verifier) LogValue() slog.Value {
	return slog.GroupValue(slog.String("phc", redacted), slog.String("pepper_id", v.PepperID))
}

// MarshalJSON redacts the PHC string; see the type's comment.
func (v Verifier) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		PHC      string `json:"phc"`
		PepperID string `json:"pepper_id"`
	}{redacted, v.PepperID})
}

var (
	_ slog.LogValuer = Pepper{}
	_ slog.LogValuer = Verifier{}
	_ fmt.Formatter  = Pepper{}
	_ fmt.Formatter  = Verifier{}
)
