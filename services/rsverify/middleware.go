package rsverify

import (
	"encoding/json"
	"errors"
	"net/http"
)

// algs is the auth-param of RFC 9449 §7.1 that tells clients which proof
// algorithms this server accepts.
const algs = `algs="ES256"`

// Middleware verifies each request with Verify and calls next with the
// *Token in the request context (FromContext). A refused request never
// reaches next; it gets:
//
//   - no credentials: 401, WWW-Authenticate: DPoP algs="ES256" (RFC 6750
//     §3.1: no error code when the request had no token);
//   - a bad token: 401, WWW-Authenticate: DPoP error="invalid_token",
//     algs="ES256";
//   - a bad or missing proof: 401, WWW-Authenticate: DPoP
//     error="invalid_dpop_proof", algs="ES256" (RFC 9449 §7.1);
//   - the replay cache failing: 503, since the request cannot be checked.
//
// The body is an RFC 9457 problem with a "code" member, as on Strongroom's
// own /v1 API. Neither the body nor the header says which check failed:
// that goes to Config.OnError, not to a client probing the API.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := v.Verify(r)
		if err != nil {
			if v.onError != nil {
				v.onError(r, err)
			}
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), tok)))
	})
}

func writeError(w http.ResponseWriter, err error) {
	status, code, challenge := http.StatusUnauthorized, "", "DPoP "+algs
	switch {
	case errors.Is(err, ErrNoToken):
		code = "invalid_token"
	case errors.Is(err, ErrInvalidProof):
		code = "invalid_dpop_proof"
		challenge = `DPoP error="invalid_dpop_proof", ` + algs
	case errors.Is(err, ErrInvalidToken):
		code = "invalid_token"
		challenge = `DPoP error="invalid_token", ` + algs
	default:
		status, code, challenge = http.StatusServiceUnavailable, "temporarily_unavailable", ""
	}
	h := w.Header()
	if challenge != "" {
		h.Set("WWW-Authenticate", challenge)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code})
}

// problem is an RFC 9457 problem details object.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
}
