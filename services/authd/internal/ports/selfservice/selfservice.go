// Package selfservice serves the app's /v1 API on the public listener:
// device enrollment and passcode setting (authenticated by a DPoP proof
// by the device key), and the signed-in user's sessions (a DPoP-bound
// access token).
package selfservice

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4"

	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/internal/ports/problem"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/ratelimit"
	"strongroom.dev/services/authd/internal/readmodel"
	"strongroom.dev/services/dpop"
)

// Resource is the audience of tokens for /v1, relative to the issuer.
const Resource = "/v1"

// API is the /v1 API.
type API struct {
	OAuth  *oauth.Server
	App    *app.Service
	Models projection.Reader
	Codes  *ratelimit.Limiter
	// Challenges limits challenges per device key (nil: unlimited).
	Challenges *ratelimit.Limiter
	Log        *slog.Logger
	Now        func() time.Time
}

// Routes registers the /v1 endpoints on the public mux.
func (a *API) Routes(public oauth.Mux) {
	public.HandleFunc("POST /v1/devices", a.enroll)
	public.HandleFunc("PUT /v1/devices/{device_id}/passcode", a.setPasscode)
	public.HandleFunc("GET /v1/sessions", a.sessions)
	public.HandleFunc("DELETE /v1/sessions/{sid}", a.signOut)
	public.HandleFunc("DELETE /v1/devices/{device_id}", a.removeDevice)
	public.HandleFunc("PUT /v1/devices/{device_id}/biometric-key", a.enrollBiometricKey)
	public.HandleFunc("DELETE /v1/devices/{device_id}/biometric-key", a.removeBiometricKey)
	public.HandleFunc("POST "+oauth.PathChallenges, a.challenge)
}

// caller authenticates a /v1 request by its DPoP-bound access token.
func (a *API) caller(w http.ResponseWriter, r *http.Request) (*oauth.Caller, bool) {
	caller, err := a.OAuth.Authenticate(r.Context(), r, a.OAuth.Issuer+r.URL.EscapedPath(), a.OAuth.Issuer+Resource, "")
	var ae *oauth.AuthError
	if errors.As(err, &ae) {
		oauth.WriteAuthError(w, ae)
		problem.Write(w, ae.Status, ae.Code, ae.Reason)
		return nil, false
	}
	if err != nil {
		a.writeError(w, r, err)
		return nil, false
	}
	return caller, true
}

// signOut serves DELETE /v1/sessions/{sid}: one session.revoked, obeyed at
// once by every token of the session. Another user's session answers 404
// like a missing one.
func (a *API) signOut(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.caller(w, r)
	if !ok {
		return
	}
	sid := r.PathValue("sid")
	doc, found, err := a.Models.Get(r.Context(), readmodel.SessionsName, sid)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if !found || doc.Owner == "" || doc.Owner != caller.Subject {
		problem.Write(w, http.StatusNotFound, "not_found", "no such session")
		return
	}
	ctx := eventstore.WithActor(r.Context(), eventstore.Actor{Kind: "user", ID: caller.Subject})
	if err := a.OAuth.Storage.RevokeSession(ctx, sid, "signed_out", ""); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeDevice serves DELETE /v1/devices/{device_id}: the device is
// revoked with all its sessions. Another user's device answers 404.
func (a *API) removeDevice(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.caller(w, r)
	if !ok {
		return
	}
	ctx := eventstore.WithActor(r.Context(), eventstore.Actor{Kind: "user", ID: caller.Subject})
	err := a.App.RemoveDevice(ctx, caller.Subject, r.PathValue("device_id"))
	var e *app.Error
	if errors.As(err, &e) && e.Code == "device_unknown" {
		problem.Write(w, http.StatusNotFound, "not_found", "no such device")
		return
	}
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeError renders a refusal as RFC 9457 with the contract's code.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *app.Error
	if errors.As(err, &e) {
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)+1))
		}
		problem.Write(w, e.Status, e.Code, e.Detail)
		return
	}
	a.Log.ErrorContext(r.Context(), "request failed", "path", r.URL.Path, "err", err)
	problem.Write(w, http.StatusInternalServerError, "server_error", "try again")
}

// proof verifies the request's DPoP proof, which every device request
// carries (CONTRACT.md, DPoP rules).
func (a *API) proof(w http.ResponseWriter, r *http.Request) (*dpop.Proof, bool) {
	p, err := a.OAuth.Proofs.Check(r.Context(), r, a.OAuth.Issuer+r.URL.EscapedPath(), false, "")
	var pe *oauth.ProofError
	switch {
	case errors.As(err, &pe):
		problem.Write(w, http.StatusBadRequest, pe.Code, pe.Reason)
		return nil, false
	case err != nil:
		a.writeError(w, r, err)
		return nil, false
	case p == nil:
		problem.Write(w, http.StatusBadRequest, "invalid_dpop_proof", "a DPoP proof by the device key is required")
		return nil, false
	}
	return p, true
}

// decode reads a small JSON object, refusing unknown fields and trailing
// data, so junk in any parameter is a clear 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" && ct != "application/json; charset=utf-8" {
		problem.Write(w, http.StatusUnsupportedMediaType, "invalid_request", "the body must be application/json")
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "the body must be one JSON object with the documented fields")
		return false
	}
	return true
}

// allowCode applies the activation-code attempt limits.
func (a *API) allowCode(w http.ResponseWriter, r *http.Request) bool {
	ip := ""
	if p := eventstore.PersonalFrom(r.Context()); p != nil {
		ip = p.IP
	}
	if !a.Codes.Allow(ip) {
		w.Header().Set("Retry-After", "60")
		problem.Write(w, http.StatusTooManyRequests, "rate_limited", "too many attempts; try again later")
		return false
	}
	return true
}

type enrollRequest struct {
	ActivationCode string          `json:"activation_code"`
	Name           string          `json:"name"`
	Platform       string          `json:"platform"`
	Attestation    json.RawMessage `json:"attestation,omitempty"`
}

// enroll serves POST /v1/devices: the device key is the proof's key; the
// code is consumed in the same append that enrolls the device.
func (a *API) enroll(w http.ResponseWriter, r *http.Request) {
	p, ok := a.proof(w, r)
	if !ok {
		return
	}
	var req enrollRequest
	if !decode(w, r, &req) || !a.allowCode(w, r) {
		return
	}
	jwk := map[string]any{}
	raw, _ := json.Marshal(dpopJWK(p))
	_ = json.Unmarshal(raw, &jwk)
	ctx := eventstore.WithActor(r.Context(), eventstore.Actor{Kind: "device", ID: p.JKT})
	id, err := a.App.EnrollDevice(ctx, app.Enrollment{Code: req.ActivationCode, Name: req.Name, Platform: req.Platform,
		KeyThumbprint: p.JKT, PublicJWK: jwk})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]string{"device_id": id})
}

type passcodeRequest struct {
	ActivationCode string `json:"activation_code,omitempty"`
	PasscodeSealed string `json:"passcode_sealed"`
	SealingKID     string `json:"sealing_kid"`
}

// setPasscode serves PUT /v1/devices/{device_id}/passcode.
func (a *API) setPasscode(w http.ResponseWriter, r *http.Request) {
	p, ok := a.proof(w, r)
	if !ok {
		return
	}
	var req passcodeRequest
	if !decode(w, r, &req) {
		return
	}
	if req.ActivationCode != "" && !a.allowCode(w, r) {
		return
	}
	deviceID := r.PathValue("device_id")
	ctx := eventstore.WithActor(r.Context(), eventstore.Actor{Kind: "device", ID: deviceID})
	err := a.App.SetPasscode(ctx, app.Sealed{DeviceID: deviceID, KeyThumbprint: p.JKT, JTI: p.JTI,
		Sealed: req.PasscodeSealed, KID: req.SealingKID}, req.ActivationCode)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type sessionView struct {
	SessionID  string    `json:"sid"`
	DeviceID   string    `json:"device_id,omitempty"`
	DeviceName string    `json:"device_name,omitempty"`
	Platform   string    `json:"platform,omitempty"`
	ACR        string    `json:"acr,omitempty"`
	AuthTime   time.Time `json:"auth_time"`
	StartedAt  time.Time `json:"started_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

// sessions serves GET /v1/sessions: the user's active sessions and their
// devices.
func (a *API) sessions(w http.ResponseWriter, r *http.Request) {
	caller, ok := a.caller(w, r)
	if !ok {
		return
	}
	docs, err := a.Models.ListByOwner(r.Context(), readmodel.SessionsName, caller.Subject)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	out := struct {
		Sessions []sessionView `json:"sessions"`
	}{Sessions: []sessionView{}}
	now := a.Now()
	for _, d := range docs {
		s, err := projection.Decode[readmodel.Session](d)
		if err != nil || !s.Active(now) {
			continue
		}
		v := sessionView{SessionID: s.SessionID, DeviceID: s.DeviceID, ACR: s.ACR, AuthTime: s.AuthTime,
			StartedAt: s.StartedAt, ExpiresAt: s.ExpiresAt, Current: s.SessionID == caller.SessionID}
		// Device names are for display: the eventually consistent devices
		// read model is right for them.
		if dd, ok, _ := a.Models.Get(r.Context(), readmodel.DevicesName, s.DeviceID); ok {
			if dev, err := projection.Decode[readmodel.Device](dd); err == nil {
				v.DeviceName, v.Platform = dev.Name, dev.Platform
			}
		}
		out.Sessions = append(out.Sessions, v)
	}
	slices.SortFunc(out.Sessions, func(x, y sessionView) int { return y.StartedAt.Compare(x.StartedAt) })
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// dpopJWK is the proof key as a public JWK, recorded with the device.
func dpopJWK(p *dpop.Proof) jose.JSONWebKey { return jose.JSONWebKey{Key: p.Key} }
