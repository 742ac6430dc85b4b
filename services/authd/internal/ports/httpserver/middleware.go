package httpserver

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"

	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/ports/problem"
)

const (
	// maxUserAgent bounds the user agent stored with every event: enough
	// for any real app's, not a place to park a payload.
	maxUserAgent = 256
	// maxRequestID bounds a client's X-Request-ID, which becomes the
	// correlation id of the events the request appends.
	maxRequestID = 64
)

// requestContext records on the request context what the event store
// stores with every event the request appends: the client's IP and user
// agent as personal data, and a correlation id, taken from a sane
// X-Request-ID or else the trace id. The correlation id is echoed in the
// X-Request-ID response header.
//
// The IP is the peer of the TCP connection, or, behind a load balancer
// listed in Options.ProxyProtocolFrom, the source its PROXY protocol
// header names. Forwarded headers are never trusted: with TLS passthrough
// no proxy can add them, so only a client could.
func requestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ctx = eventstore.WithPersonal(ctx, eventstore.Personal{
			IP:        clientIP(r.RemoteAddr),
			UserAgent: truncateUTF8(r.UserAgent(), maxUserAgent),
		})
		id := correlationID(r.Header.Values("X-Request-Id"), trace.SpanContextFromContext(ctx))
		ctx = eventstore.WithMetadata(ctx, eventstore.Metadata{CorrelationID: id})
		w.Header().Set("X-Request-Id", id)

		inner := r.WithContext(ctx)
		next.ServeHTTP(w, inner)
		// Hand the matched route back to otelhttp, which names the span
		// after the pattern of the request it passed down.
		r.Pattern = inner.Pattern
	})
}

// clientIP returns the IP of a RemoteAddr ("ip:port"), with IPv4-mapped
// IPv6 addresses unmapped and zones dropped, or "" if it is not one.
func clientIP(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return ""
	}
	return ap.Addr().Unmap().WithZone("").String()
}

// truncateUTF8 returns s as valid UTF-8 of at most n bytes, cut at a rune
// boundary so the stored JSON never holds half a character.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// correlationID accepts exactly one X-Request-ID of at most 64 characters
// from [A-Za-z0-9._-]; anything else is ignored in favour of the trace id,
// so a client cannot inject markup or log syntax into the audit trail.
func correlationID(values []string, sc trace.SpanContext) string {
	if len(values) == 1 && saneRequestID(values[0]) {
		return values[0]
	}
	if sc.TraceID().IsValid() {
		return sc.TraceID().String()
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func saneRequestID(s string) bool {
	if s == "" || len(s) > maxRequestID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// limitBody refuses a declared body over max at once (413 problem) and
// caps the bytes a handler can read from an undeclared (chunked) one.
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			problem.Write(w, http.StatusRequestEntityTooLarge, "request_too_large", "The request body is too large.")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler panic into a logged error and a 500
// problem, instead of a dropped connection with no trace in the logs.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.ErrorContext(r.Context(), "handler panicked", "panic", p, "stack", string(debug.Stack()))
			problem.Write(w, http.StatusInternalServerError, "internal_error", "")
		}()
		next.ServeHTTP(w, r)
	})
}
