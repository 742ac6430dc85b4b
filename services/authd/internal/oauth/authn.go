package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Caller is the verified access token of a request to /admin/v1 or /v1.
type Caller struct {
	Subject   string
	ClientID  string
	SessionID string
	Scopes    []string
	Audience  []string
	JKT       string
	ExpiresAt time.Time
}

// AuthError is why a request's access token was refused; Code is the
// RFC 6750 §3.1 / RFC 9449 §7.1 error for WWW-Authenticate.
type AuthError struct {
	Status int
	Code   string
	Reason string
	// Nonce is set when the client must retry with a server nonce.
	Nonce string
}

func (e *AuthError) Error() string { return e.Code + ": " + e.Reason }

// Authenticate verifies the access token of r for the resource audience
// (RFC 9068 §4): signature by a published key, issuer, audience, expiry,
// the required scope, a session that is still active, and — for a token
// bound to a key (cnf.jkt) — the DPoP scheme with a proof by that key that
// carries the token's hash (ath). externalURL is the request URL as the
// client addressed it (the proof's htu).
func (s *Server) Authenticate(ctx context.Context, r *http.Request, externalURL, audience, scope string) (*Caller, error) {
	unauthorized := func(code, reason string) error {
		return &AuthError{Status: http.StatusUnauthorized, Code: code, Reason: reason}
	}
	auths := r.Header.Values("Authorization")
	if len(auths) != 1 {
		return nil, unauthorized("invalid_token", "one Authorization header with an access token is required")
	}
	scheme, token := bearerOrDPoP(auths[0])
	if token == "" || (scheme != "bearer" && scheme != "dpop") {
		return nil, unauthorized("invalid_token", "use the Bearer or DPoP scheme")
	}
	t, err := s.Signer.Decode(ctx, token)
	if err != nil {
		return nil, unauthorized("invalid_token", "the access token is not valid")
	}
	c := t.Claims
	if iss, _ := c["iss"].(string); iss != s.Issuer {
		return nil, unauthorized("invalid_token", "the access token is from another issuer")
	}
	caller := &Caller{Audience: stringList(c["aud"]), Scopes: strings.Fields(str(c["scope"]))}
	caller.Subject, caller.ClientID, caller.SessionID = str(c["sub"]), str(c["client_id"]), str(c["sid"])
	if exp, ok := c["exp"].(float64); ok {
		caller.ExpiresAt = time.Unix(int64(exp), 0)
	}
	if !slices.Contains(caller.Audience, audience) {
		return nil, unauthorized("invalid_token", "the access token is not for this resource")
	}
	if cnf, ok := c["cnf"].(map[string]any); ok {
		caller.JKT = str(cnf["jkt"])
	}
	switch {
	case caller.JKT != "" && scheme != "dpop":
		// RFC 9449 §7.1: a bound token sent as Bearer is refused.
		return nil, unauthorized("invalid_token", "a DPoP-bound token must be sent with the DPoP scheme")
	case caller.JKT == "" && scheme == "dpop":
		return nil, unauthorized("invalid_token", "the access token is not DPoP-bound")
	case caller.JKT != "":
		proof, err := s.Proofs.Check(ctx, r, externalURL, false, token)
		var pe *ProofError
		if errors.As(err, &pe) {
			return nil, &AuthError{Status: http.StatusUnauthorized, Code: pe.Code, Reason: pe.Reason}
		}
		if err != nil {
			return nil, fmt.Errorf("verify proof: %w", err)
		}
		if proof == nil {
			return nil, unauthorized("invalid_dpop_proof", "a DPoP proof is required")
		}
		if proof.JKT != caller.JKT {
			return nil, unauthorized("invalid_dpop_proof", "the proof's key is not the token's key")
		}
	}
	if scope != "" && !slices.Contains(caller.Scopes, scope) {
		return nil, &AuthError{Status: http.StatusForbidden, Code: "insufficient_scope", Reason: "the access token lacks the scope " + scope}
	}
	active, err := s.Storage.SessionActive(ctx, caller.SessionID)
	if err != nil {
		return nil, fmt.Errorf("check session: %w", err)
	}
	if !active {
		return nil, unauthorized("invalid_token", "the session of the access token has ended")
	}
	return caller, nil
}

// WriteAuthError answers a refused access token with RFC 6750 §3 /
// RFC 9449 §7.1 WWW-Authenticate challenges.
func WriteAuthError(w http.ResponseWriter, e *AuthError) {
	w.Header().Add("WWW-Authenticate", fmt.Sprintf(`DPoP error=%q, algs="ES256"`, e.Code))
	w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Bearer error=%q`, e.Code))
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func stringList(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return a
	}
	return nil
}
