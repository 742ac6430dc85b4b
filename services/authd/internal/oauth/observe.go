package oauth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
)

var tracer = otel.Tracer("strongroom.dev/services/authd/internal/oauth")

// grantLabels are the grant types as metric labels and span names; any
// other value a client sends is "other", so a hostile request cannot
// create series.
var grantLabels = map[string]string{
	GrantPasscode: "passcode", GrantBiometric: "biometric",
	GrantRefreshToken: "refresh_token", GrantClientCredentials: "client_credentials",
}

// observeToken wraps the token endpoint in a span for the grant
// ("oauth2.grant passcode") and counts every answer by grant type and
// outcome — "issued", or the refusal's code (strongroom_error, else the
// RFC 6749 error) — with its duration.
func (s *Server) observeToken(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, span := tracer.Start(r.Context(), "oauth2.grant")
		defer span.End()
		r = r.WithContext(ctx)
		ow := &outcomeWriter{ResponseWriter: w}
		next(ow, r)
		grant, ok := grantLabels[r.PostForm.Get("grant_type")]
		if !ok {
			grant = "other"
		}
		outcome := ow.outcome()
		span.SetName("oauth2.grant " + grant)
		span.SetAttributes(attribute.String("oauth2.grant_type", grant), attribute.String("strongroom.outcome", outcome))
		if ow.status >= 500 {
			span.SetStatus(codes.Error, outcome)
		}
		s.Metrics.Grant(ctx, grant, outcome, time.Since(start).Seconds())
	}
}

// outcomeWriter remembers a response's status and, for an error, the start
// of its body, where the error code is.
type outcomeWriter struct {
	http.ResponseWriter
	status int
	body   []byte
}

const maxErrorBody = 1024

func (w *outcomeWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *outcomeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 400 && len(w.body) < maxErrorBody {
		w.body = append(w.body, b[:min(len(b), maxErrorBody-len(w.body))]...)
	}
	return w.ResponseWriter.Write(b)
}

// outcome is "issued" for a success, else the answer's error code (only
// the codes the server itself writes, checked to be short identifiers).
func (w *outcomeWriter) outcome() string {
	if w.status != 0 && w.status < 400 {
		return "issued"
	}
	var e struct {
		Error      string `json:"error"`
		Strongroom string `json:"strongroom_error"`
	}
	_ = json.Unmarshal(w.body, &e)
	for _, code := range []string{e.Strongroom, e.Error} {
		if identifier(code) {
			return code
		}
	}
	return "http_" + strconv.Itoa(w.status)
}

func identifier(s string) bool {
	if s == "" || len(s) > 48 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return true
}
