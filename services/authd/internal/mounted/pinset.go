package mounted

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Files of the pin-set ConfigMap the operator writes (CONTRACT.md,
// Pinning).
const (
	PinSetFile  = "pinset.json"
	AndroidFile = "android.xml"
)

// PinSet is the published pin set: the compact JWS the operator signed and
// its Android Network Security Config rendering. authd serves them as they
// are (apps verify the signature); it only checks their shape, and that the
// version never goes back.
type PinSet struct {
	JWS     []byte
	Android []byte
	Version int64
}

// PinSets serves the pin set of a mounted ConfigMap directory.
func PinSets(dir string, o Options) (*Value[PinSet], error) {
	return New([]string{dir + "/" + PinSetFile, dir + "/" + AndroidFile}, parsePinSet, o)
}

func parsePinSet(b [][]byte, cur PinSet) (PinSet, error) {
	jws := bytes.TrimSpace(b[0])
	version, err := pinSetVersion(string(jws))
	if err != nil {
		return PinSet{}, fmt.Errorf("%s: %w", PinSetFile, err)
	}
	if version < cur.Version {
		return PinSet{}, fmt.Errorf("%s: version %d is older than the served %d", PinSetFile, version, cur.Version)
	}
	if err := wellFormedXML(b[1]); err != nil {
		return PinSet{}, fmt.Errorf("%s: %w", AndroidFile, err)
	}
	return PinSet{JWS: jws, Android: b[1], Version: version}, nil
}

// pinSetVersion checks the shape of a compact JWS (ES256 with a kid) and
// returns the payload's version. The signature is the apps' to verify.
func pinSetVersion(jws string) (int64, error) {
	if len(jws) > 64<<10 {
		return 0, errors.New("larger than 64 KiB")
	}
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return 0, errors.New("not a compact JWS")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodeJSON(parts[0], &header); err != nil || header.Alg != "ES256" || header.Kid == "" {
		return 0, errors.New("the header must name alg ES256 and a kid")
	}
	var payload struct {
		Version *int64 `json:"version"`
		Pins    []struct {
			SHA256 string `json:"sha256"`
		} `json:"pins"`
	}
	if err := decodeJSON(parts[1], &payload); err != nil || payload.Version == nil || *payload.Version < 1 || len(payload.Pins) == 0 {
		return 0, errors.New("the payload must hold a positive version and pins")
	}
	if sig, err := base64.RawURLEncoding.Strict().DecodeString(parts[2]); err != nil || len(sig) != 64 {
		return 0, errors.New("the signature is not an ES256 signature")
	}
	return *payload.Version, nil
}

func decodeJSON(seg string, v any) error {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

func wellFormedXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	elements := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if _, ok := tok.(xml.StartElement); ok {
			elements++
		}
	}
	if elements == 0 {
		return errors.New("no XML element")
	}
	return nil
}
