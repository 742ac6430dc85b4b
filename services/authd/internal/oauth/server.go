package oauth

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/ory/fosite"

	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/metrics"
	"strongroom.dev/services/authd/internal/mounted"
	"strongroom.dev/services/authd/internal/sealing"
)

// Server is authd's OAuth2 HTTP surface.
type Server struct {
	Provider fosite.OAuth2Provider
	Storage  *Storage
	Signer   *Signer
	Keys     keys.Source
	Proofs   *ProofChecker
	Devices  DeviceKeys
	// Issuer is the public base URL; AdminURL the internal listener's.
	Issuer   string
	AdminURL string
	// GrantTypes are the grant types the token endpoint serves.
	GrantTypes []string
	// Sealing holds the keys apps seal passcodes to.
	Sealing *sealing.Ring
	// RevokeRefresh revokes authd's own refresh tokens (RFC 7009).
	RevokeRefresh RevokeRefreshFunc
	// PinSets is the operator's pin set, mounted; nil serves none.
	PinSets *mounted.Value[mounted.PinSet]
	// Metrics counts token requests (nil counts nothing).
	Metrics *metrics.Metrics
	Log     *slog.Logger
	Now     func() time.Time
}

// Mux is where routes are registered: an *http.ServeMux, or a recorder in
// the test that holds the routes to the OpenAPI document.
type Mux interface {
	Handle(pattern string, handler http.Handler)
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}

// Routes registers the public and internal endpoints.
func (s *Server) Routes(public, admin Mux) {
	public.HandleFunc("GET "+PathDiscovery, s.discovery)
	public.HandleFunc("GET "+PathJWKS, s.jwks)
	public.HandleFunc("GET "+PathSealingKeys, s.sealingKeys)
	public.HandleFunc("GET "+PathPinSet, s.pinSet)
	public.HandleFunc("GET "+PathPinSetAndroid, s.pinSetAndroid)
	public.HandleFunc("POST "+PathToken, s.observeToken(s.token))
	public.HandleFunc("POST "+PathRevoke, s.revoke)
	admin.HandleFunc("POST "+PathIntrospect, s.introspect)
}

// oauthError is an RFC 6749 §5.2 error body with Strongroom's stable code.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
	Strongroom  string `json:"strongroom_error,omitempty"`
}

func writeOAuthError(w http.ResponseWriter, status int, e oauthError) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(e)
}

// formRequest checks what every /oauth2 POST must be before fosite parses
// it: a urlencoded body (RFC 6749 §3.2), each parameter at most once (RFC
// 6749 §3.1; resource may repeat, RFC 8707 §2). A request that fails here
// gets invalid_request and touches nothing.
func formRequest(w http.ResponseWriter, r *http.Request, repeatable ...string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_request",
			Description: "the body must be application/x-www-form-urlencoded"})
		return false
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: "the body is not a valid form"})
		return false
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && !slices.Contains(repeatable, k) {
			writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_request",
				Description: "a parameter is repeated"})
			return false
		}
	}
	if len(r.URL.RawQuery) > 0 {
		// Credentials in URLs end up in logs (RFC 6749 §3.2).
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_request",
			Description: "parameters belong in the body, not the URL"})
		return false
	}
	return true
}

// proofFailed answers a failed proof check (a *ProofError as such,
// anything else as a server error) and reports whether there was one.
func (s *Server) proofFailed(w http.ResponseWriter, r *http.Request, err error) bool {
	var pe *ProofError
	switch {
	case errors.As(err, &pe):
		s.writeProofError(w, pe)
	case err != nil:
		s.serverError(w, r, err)
	default:
		return false
	}
	return true
}

func (s *Server) writeProofError(w http.ResponseWriter, err *ProofError) {
	if err.Code == "use_dpop_nonce" {
		w.Header().Set("DPoP-Nonce", s.Proofs.Nonces.Issue())
	}
	writeOAuthError(w, http.StatusBadRequest, oauthError{Error: err.Code, Description: err.Reason})
}
