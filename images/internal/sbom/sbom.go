// Package sbom checks a CycloneDX JSON SBOM and rewrites it into a
// reproducible form before it goes into an image.
//
// cyclonedx-gomod (v1.10.0, the generator the Makefile runs) ignores
// SOURCE_DATE_EPOCH: unless told -notimestamp it stamps metadata.timestamp
// with the wall clock, unless told -noserial it writes a random
// serialNumber, and it always records hashes of its own executable in
// metadata.tools, which change with how and where the tool was compiled. Any
// of these would change the image digest from one build to the next, so
// Normalize replaces them, whatever the generator was told:
//
//   - metadata.timestamp becomes the image's creation time (the fixed
//     SOURCE_DATE_EPOCH), so the SBOM still says when its source was made;
//   - serialNumber becomes a name-based UUID (version 5) of the rest of the
//     document: the same SBOM always gets the same serial, and any change to
//     it gets another one, which is what a serial is for;
//   - the "hashes" of every tool in metadata.tools are removed (the tool's
//     name and version stay).
//
// Everything else is kept as the generator wrote it, re-indented with
// object keys sorted.
package sbom

import (
	"bytes"
	"crypto/sha1" // UUID version 5 is defined on SHA-1; no security property rests on it.
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// MediaType is CycloneDX JSON's media type (IANA registered), used for the
// SBOM's OCI artifact type and its blob.
const MediaType = "application/vnd.cyclonedx+json"

// BinaryHashProperty is the metadata property in which cyclonedx-gomod
// records the SHA-256 of the binary it described.
const BinaryHashProperty = "cdx:gomod:binary:hash:SHA-256"

// Options says how to normalise.
type Options struct {
	// Created replaces metadata.timestamp.
	Created time.Time
	// BinarySHA256, when set, must equal the binary hash the SBOM records
	// (if it records one): an SBOM of another build is refused.
	BinarySHA256 string
}

// Normalize checks that raw is a CycloneDX JSON document and returns its
// reproducible form (see the package documentation).
func Normalize(raw []byte, opts Options) ([]byte, error) {
	doc, err := decodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("SBOM is not a JSON object: %w", err)
	}
	var format, spec string
	if err := field(doc, "bomFormat", &format); err != nil || format != "CycloneDX" {
		return nil, errors.New(`SBOM is not CycloneDX JSON (bomFormat is not "CycloneDX")`)
	}
	if err := field(doc, "specVersion", &spec); err != nil || spec == "" {
		return nil, errors.New("SBOM has no specVersion")
	}

	meta := map[string]json.RawMessage{}
	if raw, ok := doc["metadata"]; ok {
		if meta, err = decodeObject(raw); err != nil {
			return nil, fmt.Errorf("SBOM metadata: %w", err)
		}
	}
	if err := checkBinaryHash(meta, opts.BinarySHA256); err != nil {
		return nil, err
	}
	if meta["timestamp"], err = json.Marshal(opts.Created.UTC().Format(time.RFC3339)); err != nil {
		return nil, fmt.Errorf("SBOM timestamp: %w", err)
	}
	if tools, ok := meta["tools"]; ok {
		if meta["tools"], err = withoutToolHashes(tools); err != nil {
			return nil, fmt.Errorf("SBOM metadata.tools: %w", err)
		}
	}
	if doc["metadata"], err = encode(meta); err != nil {
		return nil, err
	}

	delete(doc, "serialNumber")
	unserialed, err := encode(doc)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(unserialed)
	if doc["serialNumber"], err = json.Marshal("urn:uuid:" + uuidV5(urlNamespace, "strongroom.dev/images/sbom/sha256:"+hex.EncodeToString(sum[:]))); err != nil {
		return nil, err
	}
	return encode(doc)
}

// checkBinaryHash compares the binary hash the SBOM records, if any, with
// the binary going into the image.
func checkBinaryHash(meta map[string]json.RawMessage, want string) error {
	raw, ok := meta["properties"]
	if !ok || want == "" {
		return nil
	}
	var props []struct{ Name, Value string }
	if err := json.Unmarshal(raw, &props); err != nil {
		return fmt.Errorf("SBOM metadata.properties: %w", err)
	}
	for _, p := range props {
		if p.Name == BinaryHashProperty && !strings.EqualFold(p.Value, want) {
			return fmt.Errorf("SBOM describes another binary (its SHA-256 is %s, the binary's is %s): regenerate it", p.Value, want)
		}
	}
	return nil
}

// withoutToolHashes removes "hashes" from each tool, in both shapes
// CycloneDX allows: the legacy array of tools (what cyclonedx-gomod
// writes) and, from spec 1.5, an object of components and services.
func withoutToolHashes(raw json.RawMessage) (json.RawMessage, error) {
	strip := func(list json.RawMessage) (json.RawMessage, error) {
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(list, &items); err != nil {
			return nil, err
		}
		for _, it := range items {
			delete(it, "hashes")
		}
		return encode(items)
	}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		return strip(raw)
	}
	obj, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"components", "services"} {
		if list, ok := obj[k]; ok {
			if obj[k], err = strip(list); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return encode(obj)
}

// decodeObject decodes exactly one JSON object, refusing trailing data.
func decodeObject(raw []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null instead of an object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return m, nil
}

func field(doc map[string]json.RawMessage, key string, v any) error {
	raw, ok := doc[key]
	if !ok {
		return fmt.Errorf("no %s", key)
	}
	return json.Unmarshal(raw, v)
}

// encode writes v with sorted object keys, two-space indentation and a
// final newline, escaping nothing the input did not escape (json.Marshal
// would turn every "&" of a purl into "\u0026").
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding SBOM: %w", err)
	}
	return buf.Bytes(), nil
}

// urlNamespace is RFC 9562's namespace for names that are URLs.
var urlNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// uuidV5 returns the name-based (SHA-1) UUID of name in namespace ns
// (RFC 9562, section 5.5). CycloneDX's schema accepts versions 1 to 5 only.
func uuidV5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	s := hex.EncodeToString(u[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
