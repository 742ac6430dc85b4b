package rsverify

import (
	"net/http"
	"testing"
	"time"
)

func TestMaxAge(t *testing.T) {
	cases := []struct {
		name  string
		value []string
		want  time.Duration
	}{
		{"absent", nil, DefaultMaxAge},
		{"max-age", []string{"public, max-age=120"}, 2 * time.Minute},
		{"upper case, spaces", []string{"Public,  MAX-AGE=60 "}, time.Minute},
		{"quoted", []string{`max-age="30"`}, 30 * time.Second},
		{"second header", []string{"public", "max-age=10"}, 10 * time.Second},
		{"no-store", []string{"no-store"}, 0},
		{"no-cache", []string{"no-cache, max-age=600"}, 0},
		{"garbage", []string{"max-age=soon"}, 0},
		{"negative", []string{"max-age=-5"}, 0},
		{"capped", []string{"max-age=9999999999"}, maxMaxAge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range c.value {
				h.Add("Cache-Control", v)
			}
			if got := maxAge(h); got != c.want {
				t.Errorf("maxAge(%q) = %v, want %v", c.value, got, c.want)
			}
		})
	}
}

func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	// One usable key (x, y: the RFC 9449 §4.1 example key) and every way a
	// key can be unusable for ES256 access tokens.
	const x, y = `"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"`, `"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"`
	body := `{"keys":[
		{"kty":"EC","crv":"P-256","kid":"good","use":"sig","alg":"ES256","x":` + x + `,"y":` + y + `},
		{"kty":"EC","crv":"P-256","kid":"good","x":"AAAA","y":"AAAA"},
		{"kty":"EC","crv":"P-256","x":` + x + `,"y":` + y + `},
		{"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":` + x + `,"y":` + y + `},
		{"kty":"EC","crv":"P-256","kid":"es384","alg":"ES384","x":` + x + `,"y":` + y + `},
		{"kty":"EC","crv":"P-256","kid":"private","d":"AAAA","x":` + x + `,"y":` + y + `},
		{"kty":"EC","crv":"P-256","kid":"off-curve","x":` + x + `,"y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"kty":"EC","crv":"P-384","kid":"p384","x":"AA","y":"AA"},
		{"kty":"RSA","kid":"rsa","n":"AQAB","e":"AQAB"},
		{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"AA"},
		"not an object"
	]}`
	keys, err := parseJWKS([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys["good"] == nil {
		t.Fatalf("keys = %v", keys)
	}
	if _, err := parseJWKS([]byte(`[]`)); err == nil {
		t.Error("parseJWKS accepted a JSON array")
	}
}
