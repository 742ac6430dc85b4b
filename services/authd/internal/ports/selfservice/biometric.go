package selfservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/assertion"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/internal/ports/problem"
)

type biometricKeyRequest struct {
	PublicKey   json.RawMessage `json:"public_key"`
	Attestation json.RawMessage `json:"attestation,omitempty"`
}

// enrollBiometricKey serves PUT /v1/devices/{device_id}/biometric-key: the
// device's own DPoP-bound token from a recent passcode sign-in registers
// (or replaces) its biometric key.
func (a *API) enrollBiometricKey(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.caller(w, r)
	if !ok {
		return
	}
	var req biometricKeyRequest
	if !decode(w, r, &req) {
		return
	}
	key, err := assertion.ParseKey(req.PublicKey)
	if err != nil {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "public_key must be the public JWK of an EC P-256 key")
		return
	}
	ctx := eventstore.WithActor(r.Context(), eventstore.Actor{Kind: "device", ID: r.PathValue("device_id")})
	err = a.App.EnrollBiometricKey(ctx, app.BiometricEnrollment{SessionID: caller.SessionID, DeviceID: r.PathValue("device_id"), Key: key})
	var e *app.Error
	if errors.As(err, &e) && e.Code == "insufficient_user_authentication" {
		// RFC 9470 §3: say which sign-in, and how recent, would do.
		maxAge := a.App.StepUpMaxAge
		if maxAge <= 0 {
			maxAge = app.DefaultStepUpMaxAge
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP error="insufficient_user_authentication", acr_values=%q, max_age=%d, algs="ES256"`,
			oauth.ACRPasscode, int(maxAge/time.Second)))
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeBiometricKey serves DELETE /v1/devices/{device_id}/biometric-key:
// any of the user's signed-in devices may remove the key of any of their
// devices; another user's device answers 404.
func (a *API) removeBiometricKey(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.caller(w, r)
	if !ok {
		return
	}
	ctx := eventstore.WithActor(r.Context(), eventstore.Actor{Kind: "user", ID: caller.Subject})
	if err := a.App.RemoveBiometricKey(ctx, caller.Subject, r.PathValue("device_id")); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type challengeRequest struct {
	DeviceID string `json:"device_id"`
}

type challengeResponse struct {
	ChallengeID string `json:"challenge_id"`
	Challenge   string `json:"challenge"`
	ExpiresIn   int    `json:"expires_in"`
}

// challenge serves POST /v1/challenges: a DPoP proof with the server's
// nonce, by the key of device_id, gets a challenge for the device's
// biometric key to sign. Every answer carries a fresh DPoP-Nonce. The
// proof's jti is recorded in the append that issues the challenge (one
// transaction per challenge), or before any other answer.
func (a *API) challenge(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("DPoP-Nonce", a.OAuth.Proofs.Nonces.Issue())
	p, once, err := a.OAuth.Proofs.CheckDeferred(r.Context(), r, a.OAuth.Issuer+oauth.PathChallenges, true, "")
	var pe *oauth.ProofError
	switch {
	case errors.As(err, &pe):
		problem.Write(w, http.StatusBadRequest, pe.Code, pe.Reason)
		return
	case err != nil:
		a.writeError(w, r, err)
		return
	case p == nil:
		problem.Write(w, http.StatusBadRequest, "invalid_dpop_proof", "a DPoP proof by the device key is required")
		return
	}
	ctx := eventstore.WithOnce(r.Context(), once)
	defer func() {
		// Whatever the answer, the proof is spent.
		if err := a.OAuth.Proofs.Record(context.WithoutCancel(ctx), once); err != nil && !errors.As(err, &pe) {
			a.Log.WarnContext(ctx, "record DPoP jti", "err", err)
		}
	}()
	var req challengeRequest
	if !decode(w, r, &req) {
		return
	}
	if a.Challenges != nil && !a.Challenges.Allow(p.JKT) {
		// Per device key: only the key's holder spends its budget, so
		// knowing a device id is not enough to starve the device.
		w.Header().Set("Retry-After", "60")
		problem.Write(w, http.StatusTooManyRequests, "rate_limited", "too many challenges; try again later")
		return
	}
	ctx = eventstore.WithActor(ctx, eventstore.Actor{Kind: "device", ID: req.DeviceID})
	ch, err := a.App.IssueChallenge(ctx, req.DeviceID, p.JKT)
	if errors.Is(err, eventstore.ErrReplayed) {
		problem.Write(w, http.StatusBadRequest, "invalid_dpop_proof", "the proof's jti was already used")
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(challengeResponse{ChallengeID: ch.ID, Challenge: ch.Value,
		ExpiresIn: int(ch.ExpiresAt.Sub(a.Now()).Round(time.Second) / time.Second)})
}
