// Package admin serves the back office's API (/admin/v1) on the internal
// listener: client_credentials tokens with scope strongroom:admin, every
// call naming the human operator, every change recorded as an event whose
// actor is that operator.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/internal/ports/problem"
)

// Resource is the audience of back-office tokens, relative to the issuer.
const Resource = "/admin"

// API is the back-office HTTP API.
type API struct {
	OAuth  *oauth.Server
	App    *app.Service
	Events eventstore.Store
	Log    *slog.Logger
}

// Routes registers the /admin/v1 endpoints on the internal mux.
func (a *API) Routes(admin oauth.Mux) {
	admin.Handle("POST /admin/v1/sessions/{sid}/revoke", a.authenticated(a.revokeSession))
	admin.Handle("GET /admin/v1/users/{user_id}/events", a.authenticated(a.userEvents))
	admin.Handle("POST /admin/v1/activations", a.authenticated(a.issueActivation))
	admin.Handle("POST /admin/v1/devices/{device_id}/lock", a.authenticated(a.lockDevice))
}

// asOperator returns a context whose appends name the operator as actor
// and the back-office client's session as cause.
func asOperator(r *http.Request, operator string, caller *oauth.Caller) context.Context {
	ctx := eventstore.WithActor(r.Context(), eventstore.Actor{Kind: "operator", ID: operator})
	m := eventstore.MetadataFrom(ctx)
	m.CausationID = "session:" + caller.SessionID
	return eventstore.WithMetadata(ctx, m)
}

func (a *API) writeAppError(w http.ResponseWriter, r *http.Request, err error) {
	var e *app.Error
	if errors.As(err, &e) {
		problem.Write(w, e.Status, e.Code, e.Detail)
		return
	}
	a.Log.ErrorContext(r.Context(), "back-office request failed", "path", r.URL.Path, "err", err)
	problem.Write(w, http.StatusInternalServerError, "server_error", "try again")
}

type activationRequest struct {
	UserID   string `json:"user_id"`
	Purpose  string `json:"purpose"`
	Operator string `json:"operator"`
}

// issueActivation serves POST /admin/v1/activations: the code is in this
// response only; the server keeps its keyed HMAC.
func (a *API) issueActivation(w http.ResponseWriter, r *http.Request, caller *oauth.Caller) {
	var req activationRequest
	if err := readBody(r, &req); err != nil {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON object with user_id, purpose and operator")
		return
	}
	if !validOperator(req.Operator) {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "operator must name the person making the call")
		return
	}
	code, exp, err := a.App.IssueActivation(asOperator(r, req.Operator, caller), req.UserID, req.Purpose, req.Operator, caller.ClientID)
	if err != nil {
		a.writeAppError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "expires_at": exp})
}

// lockDevice serves POST /admin/v1/devices/{device_id}/lock: the device
// is locked and every session of it revoked, in one append.
func (a *API) lockDevice(w http.ResponseWriter, r *http.Request, caller *oauth.Caller) {
	var req revokeRequest
	if err := readBody(r, &req); err != nil || !validOperator(req.Operator) || len(req.Reason) > 200 || !utf8.ValidString(req.Reason) {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON object with operator and reason")
		return
	}
	if err := a.App.LockDevice(asOperator(r, req.Operator, caller), r.PathValue("device_id"), req.Operator, req.Reason); err != nil {
		var e *app.Error
		if errors.As(err, &e) && e.Code == "device_unknown" {
			problem.Write(w, http.StatusNotFound, "not_found", "no such device")
			return
		}
		a.writeAppError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authenticated checks the back-office token before the handler runs.
func (a *API) authenticated(next func(http.ResponseWriter, *http.Request, *oauth.Caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		url := a.OAuth.AdminURL + r.URL.Path
		caller, err := a.OAuth.Authenticate(r.Context(), r, url, a.OAuth.Issuer+Resource, oauth.ScopeAdmin)
		var ae *oauth.AuthError
		if errors.As(err, &ae) {
			oauth.WriteAuthError(w, ae)
			problem.Write(w, ae.Status, ae.Code, ae.Reason)
			return
		}
		if err != nil {
			a.Log.ErrorContext(r.Context(), "authenticate back office", "err", err)
			problem.Write(w, http.StatusInternalServerError, "server_error", "try again")
			return
		}
		next(w, r, caller)
	})
}

var operatorName = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._@'-]{0,127}$`)

// validOperator accepts a human operator's name or id: letters, digits and
// a few separators, at most 128 characters.
func validOperator(s string) bool {
	return utf8.ValidString(s) && operatorName.MatchString(s)
}

// readBody decodes a small JSON object, refusing unknown fields.
func readBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

type revokeRequest struct {
	Operator string `json:"operator"`
	Reason   string `json:"reason"`
}

// revokeSession ends a session: one session.revoked event, obeyed at once
// by every token of the session.
func (a *API) revokeSession(w http.ResponseWriter, r *http.Request, caller *oauth.Caller) {
	var req revokeRequest
	if err := readBody(r, &req); err != nil {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON object with operator and reason")
		return
	}
	if !validOperator(req.Operator) {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "operator must name the person making the call")
		return
	}
	if len(req.Reason) > 200 || !utf8.ValidString(req.Reason) {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "reason must be at most 200 characters")
		return
	}
	// The operator is the actor; the back-office client's session is the
	// cause, so the audit trail links person, client and change.
	ctx := asOperator(r, req.Operator, caller)
	err := a.OAuth.Storage.RevokeSession(ctx, r.PathValue("sid"), "back_office", req.Operator)
	if errors.Is(err, oauth.ErrNoSuchSession) {
		problem.Write(w, http.StatusNotFound, "not_found", "no such session")
		return
	}
	if err != nil {
		a.Log.ErrorContext(ctx, "revoke session", "err", err)
		problem.Write(w, http.StatusInternalServerError, "server_error", "try again")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type auditEvent struct {
	Position      string           `json:"position"`
	StreamID      string           `json:"stream_id"`
	StreamType    string           `json:"stream_type"`
	Version       int64            `json:"version"`
	Type          string           `json:"type"`
	SchemaVersion int              `json:"schema_version"`
	OccurredAt    time.Time        `json:"occurred_at"`
	Actor         eventstore.Actor `json:"actor"`
	IP            string           `json:"ip,omitempty"`
	UserAgent     string           `json:"user_agent,omitempty"`
	TraceID       string           `json:"trace_id,omitempty"`
	Data          json.RawMessage  `json:"data"`
}

// userEvents serves a user's audit trail straight from the event log, in
// commit order; paging by cursor never skips an event that committed late.
func (a *API) userEvents(w http.ResponseWriter, r *http.Request, _ *oauth.Caller) {
	q := r.URL.Query()
	if !validOperator(q.Get("operator")) {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "operator must name the person making the call")
		return
	}
	after := eventstore.Start
	if c := q.Get("cursor"); c != "" {
		p, err := eventstore.ParsePosition(c)
		if err != nil {
			problem.Write(w, http.StatusBadRequest, "invalid_request", "cursor is not one this API gave out")
			return
		}
		after = p
	}
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			problem.Write(w, http.StatusBadRequest, "invalid_request", "limit must be 1..500")
			return
		}
		limit = n
	}
	userID := r.PathValue("user_id")
	if userID == "" || len(userID) > eventstore.MaxIDLength || !utf8.ValidString(userID) {
		problem.Write(w, http.StatusBadRequest, "invalid_request", "bad user id")
		return
	}
	evs, err := a.Events.ReadUser(r.Context(), userID, after, limit)
	if err != nil {
		a.Log.ErrorContext(r.Context(), "read audit trail", "err", err)
		problem.Write(w, http.StatusInternalServerError, "server_error", "try again")
		return
	}
	// Reading personal data is itself worth a record.
	a.Log.InfoContext(r.Context(), "audit trail read", "operator", q.Get("operator"), "user_id", userID, "events", len(evs))
	out := struct {
		Events     []auditEvent `json:"events"`
		NextCursor string       `json:"next_cursor,omitempty"`
	}{Events: []auditEvent{}}
	for _, ev := range evs {
		ae := auditEvent{Position: ev.Position.String(), StreamID: ev.StreamID, StreamType: ev.StreamType,
			Version: ev.Version, Type: ev.Type, SchemaVersion: ev.SchemaVersion, OccurredAt: ev.OccurredAt,
			Actor: ev.Metadata.Actor, TraceID: ev.Metadata.TraceID(), Data: ev.Data}
		if ev.Personal != nil {
			ae.IP, ae.UserAgent = ev.Personal.IP, ev.Personal.UserAgent
		}
		out.Events = append(out.Events, ae)
	}
	if len(evs) == limit {
		out.NextCursor = evs[len(evs)-1].Position.String()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}
