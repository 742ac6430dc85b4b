package sbom

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

const binarySum = "b257c87f51349697c2af5317e634fbffeb8d0d6057adb901ade37188f19710e2"

// generated is shaped like cyclonedx-gomod v1.10.0's output when run without
// -noserial and -notimestamp: a wall-clock timestamp, a random serial, the
// tool's own hashes.
func generated(timestamp, serial, toolHash string) []byte {
	return []byte(`{
  "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
  "bomFormat": "CycloneDX",
  "specVersion": "1.6",
  "serialNumber": "urn:uuid:` + serial + `",
  "version": 1,
  "metadata": {
    "timestamp": "` + timestamp + `",
    "tools": [{"vendor": "CycloneDX", "name": "cyclonedx-gomod", "version": "v1.10.0",
      "hashes": [{"alg": "SHA-256", "content": "` + toolHash + `"}]}],
    "component": {"bom-ref": "pkg:golang/example.com/hello@v1.0.0?type=module", "type": "application",
      "name": "example.com/hello", "version": "v1.0.0",
      "purl": "pkg:golang/example.com/hello@v1.0.0?goarch=amd64\u0026goos=linux\u0026type=module"},
    "properties": [{"name": "cdx:gomod:binary:hash:SHA-256", "value": "` + binarySum + `"}]
  },
  "components": [{"bom-ref": "pkg:golang/std@go1.27.3?type=module", "type": "library", "name": "std", "version": "go1.27.3"}]
}`)
}

var created = time.Unix(1700000000, 0)

func normalize(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	out, err := Normalize(raw, Options{Created: created, BinarySHA256: binarySum})
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("normalised SBOM is not JSON: %v", err)
	}
	return doc
}

func TestTimestampSerialAndToolHashesAreNormalised(t *testing.T) {
	a, err := Normalize(generated("2026-11-27T22:49:01+01:00", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa"), Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Normalize(generated("2027-01-02T03:04:05Z", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "bbbb"), Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("SBOMs differing only in timestamp, serial and tool hashes normalise differently:\n%s\n%s", a, b)
	}
	doc := normalize(t, generated("2026-11-27T22:49:01+01:00", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa"))
	meta := doc["metadata"].(map[string]any)
	if got := meta["timestamp"]; got != "2023-11-14T22:13:20Z" {
		t.Errorf("timestamp = %v, want the creation time 2023-11-14T22:13:20Z", got)
	}
	// A version-5 UUID, which CycloneDX's schema accepts (versions 1-5).
	if s, _ := doc["serialNumber"].(string); !regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(s) {
		t.Errorf("serialNumber = %q, want a version-5 UUID URN", s)
	}
	tool := meta["tools"].([]any)[0].(map[string]any)
	if _, ok := tool["hashes"]; ok || tool["name"] != "cyclonedx-gomod" || tool["version"] != "v1.10.0" {
		t.Errorf("tool = %v, want name and version kept and hashes removed", tool)
	}
	// Everything else is kept.
	if c := doc["components"].([]any)[0].(map[string]any); c["name"] != "std" || c["version"] != "go1.27.3" {
		t.Errorf("components changed: %v", doc["components"])
	}
	if !strings.Contains(string(a), `goarch=amd64\u0026goos=linux`) {
		t.Errorf("purl rewritten:\n%s", a)
	}
}

func TestNormalizeIsIdempotent(t *testing.T) {
	once, err := Normalize(generated("2026-11-27T22:49:01Z", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa"), Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	twice, err := Normalize(once, Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(once, twice) {
		t.Fatalf("normalising twice changed the document:\n%s\n%s", once, twice)
	}
}

func TestSerialFollowsContent(t *testing.T) {
	serial := func(raw []byte, at time.Time) string {
		out, err := Normalize(raw, Options{Created: at})
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ SerialNumber string }
		if err := json.Unmarshal(out, &doc); err != nil {
			t.Fatal(err)
		}
		return doc.SerialNumber
	}
	base := generated("2026-11-27T22:49:01Z", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa")
	other := bytes.Replace(base, []byte("go1.27.3"), []byte("go1.27.4"), 1)
	if serial(base, created) == serial(other, created) {
		t.Error("different components, same serial")
	}
	if serial(base, created) == serial(base, created.Add(time.Second)) {
		t.Error("different timestamps, same serial")
	}
}

func TestToolsObjectShape(t *testing.T) {
	raw := []byte(`{"bomFormat":"CycloneDX","specVersion":"1.5","metadata":{"tools":{"components":[
		{"type":"application","name":"gen","version":"1","hashes":[{"alg":"SHA-256","content":"ff"}]}]}}}`)
	out, err := Normalize(raw, Options{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("hashes")) || !bytes.Contains(out, []byte(`"name": "gen"`)) {
		t.Fatalf("tool hashes not removed from the 1.5 tools object:\n%s", out)
	}
}

func TestRefuses(t *testing.T) {
	good := generated("2026-11-27T22:49:01Z", "0f2c7a9e-5d1b-4c3e-9a8f-1b2c3d4e5f60", "aaaa")
	tests := []struct {
		name   string
		raw    []byte
		binary string
		want   string
	}{
		{"not JSON", []byte("<bom/>"), "", "not a JSON object"},
		{"empty", nil, "", "not a JSON object"},
		{"null", []byte("null"), "", "not a JSON object"},
		{"array", []byte("[]"), "", "not a JSON object"},
		{"trailing data", append(append([]byte{}, good...), []byte("{}")...), "", "data after the JSON value"},
		{"SPDX", []byte(`{"spdxVersion":"SPDX-2.3"}`), "", "not CycloneDX"},
		{"no specVersion", []byte(`{"bomFormat":"CycloneDX"}`), "", "no specVersion"},
		{"metadata not an object", []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":[]}`), "", "SBOM metadata"},
		{"another binary", good, strings.Repeat("0", 64), "describes another binary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Normalize(tt.raw, Options{Created: created, BinarySHA256: tt.binary})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Normalize: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestUUIDv5(t *testing.T) {
	// Python: uuid.uuid5(uuid.NAMESPACE_URL, "https://example.com/x")
	if got, want := uuidV5(urlNamespace, "https://example.com/x"), "49517db3-5541-5e91-9cd4-395dd68a97ac"; got != want {
		t.Fatalf("uuidV5 = %s, want %s", got, want)
	}
}
