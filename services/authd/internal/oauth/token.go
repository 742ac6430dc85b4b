package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/sealing"
)

// deviceGrants always come from the app's device and always carry a proof
// by its key (CONTRACT.md, DPoP rules).
var deviceGrants = []string{GrantPasscode, GrantBiometric, GrantRefreshToken}

// token serves POST /oauth2/token. The order is the contract's: the DPoP
// proof is verified, and matched to the device's registered key, before any
// grant logic runs, so a request failing there touches no counter, no code
// and no token. A replayed proof is caught by its jti in the grant's first
// write (see CheckDeferred), which then fails and writes nothing: a replay
// may read, but never changes anything or gets a token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !formRequest(w, r, "resource") {
		return
	}
	// Every answer carries a current nonce, so a client never needs a
	// failed round trip to learn it (RFC 9449 §8.2).
	w.Header().Set("DPoP-Nonce", s.Proofs.Nonces.Issue())
	grant := r.PostForm.Get("grant_type")
	if !slices.Contains(s.GrantTypes, grant) {
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "unsupported_grant_type",
			Description: "the grant type is not supported"})
		return
	}
	proof, once, err := s.Proofs.CheckDeferred(ctx, r, s.Issuer+PathToken, true, "")
	if s.proofFailed(w, r, err) {
		return
	}
	if once != nil {
		// The grant's first append records the proof's jti in its own
		// transaction. Whatever answer does not come from such an append
		// records it here, so a proof is good for one request, however it
		// ends.
		ctx = eventstore.WithOnce(ctx, once)
		defer func() {
			var pe *ProofError
			if err := s.Proofs.Record(context.WithoutCancel(ctx), once); err != nil && !errors.As(err, &pe) {
				s.Log.WarnContext(ctx, "record DPoP jti", "err", err)
			}
		}()
	}
	if proof == nil && slices.Contains(deviceGrants, grant) {
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_dpop_proof",
			Description: "this grant needs a DPoP proof by the device key"})
		return
	}
	if deviceID := r.PostForm.Get("device_id"); deviceID != "" || slices.Contains([]string{GrantPasscode, GrantBiometric}, grant) {
		// An unknown device and a key mismatch answer alike, so device ids
		// cannot be probed (CONTRACT.md, DPoP rules).
		jkt, ok, err := s.Devices.DeviceKey(ctx, deviceID)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		if !ok || proof == nil || jkt != proof.JKT {
			writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_grant",
				Description: "unknown device", Strongroom: "device_unknown"})
			return
		}
	}
	if deviceID := r.PostForm.Get("device_id"); deviceID != "" {
		ctx = eventstore.WithActor(ctx, eventstore.Actor{Kind: "device", ID: deviceID})
	}
	var sealTo *sealing.ClientKey
	if raw := r.PostForm.Get("response_sealing_key"); raw != "" {
		// Checked before any grant logic, so a bad key changes nothing.
		k, err := sealing.ParseClientKey(raw)
		if err == nil && !s.sealingKEM(k.KEMID) {
			// X25519 is for old clients only where the deployment publishes
			// an X25519 sealing key; otherwise only X-Wing is accepted.
			err = sealing.ErrClientKeyInvalid
		}
		if err != nil || proof == nil {
			writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_request",
				Description: "response_sealing_key must be a valid one-time key, sent with a DPoP proof"})
			return
		}
		sealTo = k
	}
	if r.PostForm.Has("authorization_details") {
		// What the user confirms comes only from the biometric assertion
		// they signed, never from the request around it.
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_request",
			Description: "authorization_details come only inside a biometric assertion"})
		return
	}
	if r.PostForm.Has("audience") {
		writeOAuthError(w, http.StatusBadRequest, oauthError{Error: "invalid_request",
			Description: "use resource (RFC 8707) to select an audience"})
		return
	}
	// RFC 8707 resource selects audiences; fosite checks them against the
	// client's allowed ones as its "audience".
	if res := r.PostForm["resource"]; len(res) > 0 {
		r.PostForm["audience"] = res
		r.Form["audience"] = res
	}
	ctx = WithProof(ctx, proof)

	session := NewSession()
	session.GrantType = grant
	ar, err := s.Provider.NewAccessRequest(ctx, r, session)
	if errors.Is(err, eventstore.ErrReplayed) {
		s.writeProofError(w, errProofReplayed)
		return
	}
	var refusal *app.Error
	if errors.As(err, &refusal) {
		writeRefusal(w, refusal)
		return
	}
	if err != nil {
		s.accessError(w, r, ar, err)
		return
	}
	client := ar.GetClient()
	// fosite has checked requested audiences against the client's; grant
	// them, or with no resource named, every resource the client may
	// address.
	aud := ar.GetRequestedAudience()
	if len(aud) == 0 {
		aud = client.GetAudience()
	}
	for _, a := range aud {
		ar.GrantAudience(a)
	}
	if grant == GrantClientCredentials {
		// RFC 9068 §2.2: a token for the client itself has sub = client_id.
		session.Subject = client.GetID()
		session.JWTClaims.Subject = client.GetID()
		// fosite's handler dated the expiry by the wall clock. When
		// authd's clock is another (the end-to-end build's fast clock),
		// the expiry moves by the difference, like the device grants',
		// which authd dates itself; iat stays fosite's, which checks it
		// against the wall clock. In production the two clocks are one.
		if d := time.Until(s.Now()); d > time.Second || d < -time.Second {
			session.SetExpiresAt(fosite.AccessToken, session.GetExpiresAt(fosite.AccessToken).Add(d))
		}
		for _, sc := range ar.GetRequestedScopes() {
			ar.GrantScope(sc) // fosite already refused scopes the client lacks
		}
	}
	if session.JWTClaims.JTI == "" { // the refresh grant chose it to record it
		session.JWTClaims.JTI = uuid.NewString()
	}
	session.SetClaim(ClaimClientID, client.GetID())
	session.SetClaim(ClaimSID, ar.GetID())
	if proof != nil {
		session.BindTo(proof.JKT)
	}
	if session.DeviceID == "" {
		ctx = eventstore.WithActor(ctx, eventstore.Actor{Kind: "client", ID: client.GetID()})
	}
	resp, err := s.Provider.NewAccessResponse(ctx, ar)
	if errors.Is(err, eventstore.ErrReplayed) {
		s.writeProofError(w, errProofReplayed)
		return
	}
	if errors.As(err, &refusal) {
		writeRefusal(w, refusal) // a challenge another grant used first
		return
	}
	if err != nil {
		s.accessError(w, r, ar, err)
		return
	}
	if once != nil {
		// Every grant appends, so this is a formality; but no token leaves
		// before its proof's jti is recorded.
		if s.proofFailed(w, r, s.Proofs.Record(ctx, once)) {
			return
		}
	}
	if proof != nil {
		resp.SetTokenType("DPoP") // RFC 9449 §5
	} else {
		resp.SetTokenType("Bearer")
	}
	if sealTo != nil {
		s.writeSealed(w, r, sealTo, proof.JTI, resp.ToMap())
		return
	}
	s.Provider.WriteAccessResponse(ctx, w, ar, resp)
}

// writeSealed answers with the token response sealed to the client's
// one-time key (CONTRACT.md, Sealing): aad is the request's DPoP jti.
func (s *Server) writeSealed(w http.ResponseWriter, r *http.Request, key *sealing.ClientKey, jti string, body map[string]any) {
	plain, err := json.Marshal(body)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	sealed, err := sealing.SealTo(key, []byte(sealing.InfoTokenResponse), []byte(jti), plain)
	clear(plain)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(map[string]string{"sealed": sealed})
}

// writeRefusal renders a use case's refusal as RFC 6749 JSON with the
// contract's strongroom_error (and attempts_remaining, Retry-After).
func writeRefusal(w http.ResponseWriter, e *app.Error) {
	body := map[string]any{"error": e.OAuth, "error_description": e.Detail, "strongroom_error": e.Code}
	if e.AttemptsRemaining != nil {
		body["attempts_remaining"] = *e.AttemptsRemaining
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body)
}

// accessError answers a fosite failure; one fosite cannot classify is a
// server error, logged here (fosite would answer it without a trace).
func (s *Server) accessError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		s.serverError(w, r, err)
		return
	}
	s.Provider.WriteAccessError(r.Context(), w, ar, err)
}

func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.Log.ErrorContext(r.Context(), "oauth2 request failed", "path", r.URL.Path, "err", err)
	writeOAuthError(w, http.StatusInternalServerError, oauthError{Error: "server_error",
		Description: "the request could not be completed; try again"})
}

// bearerOrDPoP splits an Authorization header into scheme and token.
func bearerOrDPoP(h string) (scheme, token string) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok {
		return "", ""
	}
	return strings.ToLower(scheme), strings.TrimSpace(token)
}

// sealingKEM reports whether the server publishes a sealing key of kem.
func (s *Server) sealingKEM(kem uint16) bool {
	for _, k := range s.Sealing.Keys() {
		if k.KEMID == kem {
			return true
		}
	}
	return false
}
