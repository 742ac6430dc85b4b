package rsverify_test

import (
	"errors"
	"strings"
	"testing"

	"strongroom.dev/services/rsverify"
)

// FuzzVerifyRequest feeds arbitrary Authorization and DPoP header values to
// Verify: it must never panic, every error must be ErrInvalidToken or
// ErrInvalidProof (a 401, never a 500), and the only request it may accept is
// the one genuine token with its genuine proof.
func FuzzVerifyRequest(f *testing.F) {
	fx := newFixture(f)
	r, tok := fx.goodRequest(f)
	proof := r.Header.Get("DPoP")
	f.Add("DPoP "+tok, proof)
	f.Add("Bearer "+tok, proof)
	f.Add("dpop "+tok, tok)
	f.Add("DPoP "+proof, tok)
	f.Add("", proof)
	f.Add("DPoP a.b.c", "a.b.c")

	f.Fuzz(func(t *testing.T, authorization, dpopHeader string) {
		req := request("GET", apiURL, "")
		if authorization != "" {
			req.Header["Authorization"] = []string{authorization}
		}
		if dpopHeader != "" {
			req.Header["Dpop"] = []string{dpopHeader}
		}
		got, err := fx.v.Verify(req)
		if err != nil {
			if !errors.Is(err, rsverify.ErrInvalidToken) && !errors.Is(err, rsverify.ErrInvalidProof) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if !strings.HasSuffix(authorization, tok) || dpopHeader != proof || got.Subject != "user-42" {
			t.Fatalf("accepted a forged request")
		}
	})
}
