package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type nameV1 struct {
	Name string `json:"name"`
}

type nameV2 struct {
	First string `json:"first"`
	Last  string `json:"last"`
}

type nameV3 struct {
	First  string `json:"first"`
	Last   string `json:"last"`
	Source string `json:"source"`
}

// testRegistry has one type at version 3 with upcasters 1→2→3.
func testRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := NewRegistry(Schema{Type: "person.named", Version: 3, Payload: nameV3{}, Upcasters: map[int]Upcaster{
		1: func(b json.RawMessage) (json.RawMessage, error) {
			var v nameV1
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, err
			}
			first, last, _ := strings.Cut(v.Name, " ")
			return json.Marshal(nameV2{First: first, Last: last})
		},
		2: func(b json.RawMessage) (json.RawMessage, error) {
			var v nameV2
			if err := json.Unmarshal(b, &v); err != nil {
				return nil, err
			}
			return json.Marshal(nameV3{First: v.First, Last: v.Last, Source: "upcast"})
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUpcastingChain(t *testing.T) {
	r := testRegistry(t)
	cases := []struct {
		name    string
		version int
		data    string
		want    nameV3
	}{
		{"from v1", 1, `{"name":"Ada Lovelace"}`, nameV3{"Ada", "Lovelace", "upcast"}},
		{"from v2", 2, `{"first":"Alan","last":"Turing"}`, nameV3{"Alan", "Turing", "upcast"}},
		{"current", 3, `{"first":"Grace","last":"Hopper","source":"app"}`, nameV3{"Grace", "Hopper", "app"}},
		{"unknown fields ignored", 3, `{"first":"G","last":"H","source":"s","added_later":true}`, nameV3{"G", "H", "s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeAs[nameV3](r, "person.named", c.version, json.RawMessage(c.data))
			if err != nil {
				t.Fatal(err)
			}
			if *got != c.want {
				t.Fatalf("got %+v, want %+v", *got, c.want)
			}
		})
	}
}

func TestDecodeHostile(t *testing.T) {
	r := testRegistry(t)
	cases := []struct {
		name    string
		typ     string
		version int
		data    string
		want    error
	}{
		{"unknown type", "person.exploded", 1, `{}`, ErrUnknownType},
		{"future version", "person.named", 4, `{}`, ErrUnknownVersion},
		{"version zero", "person.named", 0, `{}`, ErrUnknownVersion},
		{"negative version", "person.named", -1, `{}`, ErrUnknownVersion},
		{"null", "person.named", 3, `null`, ErrMalformed},
		{"array", "person.named", 3, `[]`, ErrMalformed},
		{"string", "person.named", 3, `"x"`, ErrMalformed},
		{"wrong field type", "person.named", 3, `{"first": 1}`, ErrMalformed},
		{"trailing data", "person.named", 3, `{} {}`, ErrMalformed},
		{"not json", "person.named", 3, `{`, ErrMalformed},
		{"empty", "person.named", 3, ``, ErrMalformed},
		{"upcaster fails", "person.named", 1, `{"name": 7}`, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := r.Decode(c.typ, c.version, json.RawMessage(c.data)); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	data, v, err := Default.Encode(DeviceLocked, DeviceLockedV1{Reason: "back_office", Operator: "alice"})
	if err != nil || v != 1 || string(data) != `{"reason":"back_office","operator":"alice"}` {
		t.Fatalf("encode = %s v%d, %v", data, v, err)
	}
	if _, _, err := Default.Encode(DeviceLocked, &DeviceLockedV1{}); err != nil {
		t.Fatalf("pointer payload: %v", err)
	}
	for name, payload := range map[string]any{"wrong struct": DeviceRevokedV1{}, "nil": nil, "map": map[string]any{}} {
		if _, _, err := Default.Encode(DeviceLocked, payload); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	if _, _, err := Default.Encode("device.exploded", struct{}{}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestNewRegistryRefusesBrokenSchemas(t *testing.T) {
	cases := map[string][]Schema{
		"no type":          {{Version: 1, Payload: nameV1{}}},
		"version 0":        {{Type: "a.b", Payload: nameV1{}}},
		"no payload":       {{Type: "a.b", Version: 1}},
		"pointer payload":  {{Type: "a.b", Version: 1, Payload: &nameV1{}}},
		"duplicate":        {{Type: "a.b", Version: 1, Payload: nameV1{}}, {Type: "a.b", Version: 1, Payload: nameV1{}}},
		"missing upcaster": {{Type: "a.b", Version: 3, Payload: nameV1{}, Upcasters: map[int]Upcaster{1: nil, 2: func(b json.RawMessage) (json.RawMessage, error) { return b, nil }}}},
	}
	for name, schemas := range cases {
		if _, err := NewRegistry(schemas...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestContractTypes pins the type names of CONTRACT.md (Events): they are
// stable forever, and every one round-trips through the default registry.
func TestContractTypes(t *testing.T) {
	want := []string{
		"activation.consumed", "activation.issued", "challenge.consumed", "challenge.issued", "device.biometric_key_enrolled",
		"device.biometric_key_removed", "device.enrolled", "device.locked", "device.passcode_attempted",
		"device.passcode_failed", "device.passcode_set", "device.passcode_verified", "device.revoked",
		"device.unlocked", "session.expired", "session.refresh_reuse_detected", "session.refreshed",
		"session.revoked", "session.started", "user.device_added", "user.device_removed",
	}
	got := Default.Types()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("types = %v\nwant %v", got, want)
	}
	for _, typ := range got {
		v, err := Default.Current(typ)
		if err != nil || v < 1 {
			t.Fatalf("%s: version %d, %v", typ, v, err)
		}
		if _, err := Default.Decode(typ, v, json.RawMessage(`{}`)); err != nil {
			t.Errorf("%s: empty object does not decode: %v", typ, err)
		}
	}
}

// TestPayloadsHoldNoSecrets guards the rule that events never carry a
// secret: no payload field may be named like one.
func TestPayloadsHoldNoSecrets(t *testing.T) {
	banned := []string{"passcode\"", "password", "secret", "refresh_token\"", "\"code\"", "verifier", "\"ip\"", "user_agent"}
	for _, typ := range Default.Types() {
		s := Default.schemas[typ]
		b, err := json.Marshal(s.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, word := range banned {
			if strings.Contains(string(b), word) {
				t.Errorf("%s payload has a field like %s: %s", typ, word, b)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	r := testRegistry(f)
	f.Add("person.named", 1, []byte(`{"name":"A B"}`))
	f.Add("person.named", 3, []byte(`{"first":"x"}`))
	f.Add("device.locked", 1, []byte(`null`))
	f.Fuzz(func(t *testing.T, typ string, version int, data []byte) {
		v, err := r.Decode(typ, version, data)
		if err == nil && v == nil {
			t.Fatal("nil payload without an error")
		}
		if err != nil && !errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrUnknownVersion) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("untyped error: %v", err)
		}
	})
}
