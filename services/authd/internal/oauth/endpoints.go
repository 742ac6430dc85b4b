package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"strongroom.dev/api/authzdetails"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/mounted"
)

// revoke serves POST /oauth2/revoke (RFC 7009). Revoking any token of a
// session revokes the session. The app, a public client, must prove its
// device key with DPoP; a DPoP-bound token is revoked only by a proof of
// the key it is bound to.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !formRequest(w, r) {
		return
	}
	proof, err := s.Proofs.Check(ctx, r, s.Issuer+PathRevoke, false, "")
	if s.proofFailed(w, r, err) {
		return
	}
	if c, ok := s.Storage.Clients.Get(r.PostForm.Get("client_id")); ok && c.IsPublic() && proof == nil {
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_dpop_proof",
			Description: "a public client revokes with a DPoP proof"})
		return
	}
	token := r.PostForm.Get("token")
	if strings.HasPrefix(token, refreshTokenPrefix) {
		// authd's own refresh tokens: the holder (same client, same DPoP
		// key) ends the session; anything else is answered like an
		// unknown token.
		jkt := ""
		if proof != nil {
			jkt = proof.JKT
		}
		if err := s.RevokeRefresh(ctx, token, jkt, r.PostForm.Get("client_id")); err != nil {
			s.serverError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if jwtShaped(token) {
		// Storage finds an access token's session by the sid in its
		// unverified payload, so only a token whose signature verifies
		// may revoke anything. A token that is not JWT-shaped has no
		// signature for storage (accessSignature is ""): fosite then only
		// authenticates the client and finds nothing.
		claims, err := s.Signer.Decode(ctx, token)
		if err != nil {
			w.WriteHeader(http.StatusOK) // RFC 7009 §2.2: invalid tokens get 200
			return
		}
		if cnf, ok := claims.Claims["cnf"].(map[string]any); ok {
			if proof == nil || cnf["jkt"] != proof.JKT {
				// Not the holder: like an unknown token, left alone.
				w.WriteHeader(http.StatusOK)
				return
			}
		}
	}
	if client, ok := s.Storage.Clients.Get(r.PostForm.Get("client_id")); ok {
		ctx = eventstore.WithActor(ctx, eventstore.Actor{Kind: "client", ID: client.GetID()})
	}
	err = s.Provider.NewRevocationRequest(ctx, r)
	if err != nil && !errors.Is(err, fosite.ErrInvalidClient) && !errors.Is(err, fosite.ErrUnauthorizedClient) &&
		!errors.Is(err, fosite.ErrInvalidRequest) {
		s.Log.WarnContext(ctx, "revocation failed", "err", err)
	}
	s.Provider.WriteRevocationResponse(ctx, w, err)
}

// introspect serves POST /oauth2/introspect (RFC 7662) on the internal
// listener; the caller authenticates as a client. A token of a revoked or
// ended session is inactive at once.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !formRequest(w, r) {
		return
	}
	ir, err := s.Provider.NewIntrospectionRequest(ctx, r, NewSession())
	if err != nil {
		s.Provider.WriteIntrospectionError(ctx, w, err)
		return
	}
	// What the user confirmed lives only in the token (the log keeps its
	// digest), so it is read from the token, which fosite has verified by
	// now: RFC 9396 §9.2 wants it in the answer, as a resource server
	// that verifies the JWT itself would see it.
	if ir.GetTokenUse() == fosite.AccessToken {
		if sess, ok := ir.GetAccessRequester().GetSession().(*Session); ok {
			if d := accessTokenClaim(r.PostForm.Get("token"), ClaimAuthorizationDetails); d != nil {
				sess.SetClaim(ClaimAuthorizationDetails, d)
			}
		}
	}
	s.Provider.WriteIntrospectionResponse(ctx, w, ir)
}

// discovery serves RFC 8414 metadata.
func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	grants := slices.Clone(s.GrantTypes)
	sort.Strings(grants)
	meta := map[string]any{
		"issuer":                                s.Issuer,
		"token_endpoint":                        s.Issuer + PathToken,
		"revocation_endpoint":                   s.Issuer + PathRevoke,
		"introspection_endpoint":                s.AdminURL + PathIntrospect,
		"jwks_uri":                              s.Issuer + PathJWKS,
		"grant_types_supported":                 grants,
		"response_types_supported":              []string{},
		"token_endpoint_auth_methods_supported": []string{AuthNone, AuthClientSecretBasic, AuthPrivateKeyJWT},
		"token_endpoint_auth_signing_alg_values_supported":         []string{"ES256", "PS256", "RS256"},
		"revocation_endpoint_auth_methods_supported":               []string{AuthNone, AuthClientSecretBasic, AuthPrivateKeyJWT},
		"introspection_endpoint_auth_methods_supported":            []string{AuthClientSecretBasic, AuthPrivateKeyJWT},
		"introspection_endpoint_auth_signing_alg_values_supported": []string{"ES256", "PS256", "RS256"},
		"dpop_signing_alg_values_supported":                        []string{"ES256"},
		"sealing_keys_uri":                                         s.Issuer + PathSealingKeys,
	}
	if slices.Contains(grants, GrantBiometric) {
		meta["challenge_endpoint"] = s.Issuer + PathChallenges
		meta["authorization_details_types_supported"] = authzdetails.Types
	}
	if s.PinSets != nil {
		meta["pinset_uri"] = s.Issuer + PathPinSet
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, meta)
}

// jwks serves the published token-signing keys. The cache lifetime is
// shorter than the window in which a new key is published before it signs
// (the KeySet's publishAhead), so a resource server whose cached JWKS is
// fresh already holds the key of any token it meets.
func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", cacheFor(s.Keys.MaxAge()))
	writeJSON(w, keys.JWKS(s.Keys))
}

// sealingKeys serves the HPKE public keys apps seal passcodes to, cached
// like the JWKS.
func (s *Server) sealingKeys(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", cacheFor(s.Sealing.MaxAge()))
	writeJSON(w, s.Sealing.Document())
}

func cacheFor(d time.Duration) string {
	return "public, max-age=" + strconv.Itoa(int(d/time.Second))
}

// PinSetMaxAge is the pin set's cache lifetime: far shorter than the
// publish-ahead window (days), so apps see a new pin long before it serves.
const PinSetMaxAge = 300

// pinSet serves the operator's signed pin set as it was mounted: a compact
// JWS (RFC 7515 §9.2.1: application/jose), which apps verify themselves.
func (s *Server) pinSet(w http.ResponseWriter, r *http.Request) {
	s.servePinSet(w, r, "application/jose", func(p mounted.PinSet) []byte { return p.JWS })
}

// pinSetAndroid serves the pin set as an Android Network Security Config
// <pin-set> snippet, for the app's build.
func (s *Server) pinSetAndroid(w http.ResponseWriter, r *http.Request) {
	s.servePinSet(w, r, "application/xml", func(p mounted.PinSet) []byte { return p.Android })
}

func (s *Server) servePinSet(w http.ResponseWriter, r *http.Request, contentType string, body func(mounted.PinSet) []byte) {
	if s.PinSets == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(PinSetMaxAge))
	_, _ = w.Write(body(s.PinSets.Get()))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

const refreshTokenPrefix = "srt_"

// RevokeRefreshFunc ends the session of a refresh token held by jkt.
type RevokeRefreshFunc func(ctx context.Context, token, jkt, clientID string) error
