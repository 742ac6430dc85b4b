package httpserver

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"strongroom.dev/services/authd/internal/adapters/memstore"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/eventstore/storetest"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

const (
	incomingTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingParent = "00f067aa0ba902b7"
)

// seen is what a handler on the public listener found on its context.
type seen struct {
	Personal    *eventstore.Personal `json:"personal"`
	Correlation string               `json:"correlation"`
	TraceID     string               `json:"trace_id"`
}

func echoContext(w http.ResponseWriter, r *http.Request) {
	m := eventstore.MetadataFrom(r.Context())
	_ = json.NewEncoder(w).Encode(seen{
		Personal:    eventstore.PersonalFrom(r.Context()),
		Correlation: m.CorrelationID,
		TraceID:     m.TraceID(),
	})
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-01$`)

func TestTraceparentHonoured(t *testing.T) {
	h := newHarness(t, Options{}, func(s *Server) { s.Public().HandleFunc("GET /echo", echoContext) })
	resp, body := h.do(t, http.MethodGet, h.publicURL("/echo"),
		http.Header{"Traceparent": {"00-" + incomingTrace + "-" + incomingParent + "-01"}}, nil)

	spans := h.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("recorded %d spans, want 1", len(spans))
	}
	span := spans[0]
	if got := span.SpanContext().TraceID().String(); got != incomingTrace {
		t.Errorf("server span trace id %s, want the incoming %s", got, incomingTrace)
	}
	if got := span.Parent().SpanID().String(); got != incomingParent {
		t.Errorf("server span parent %s, want %s", got, incomingParent)
	}
	if span.Name() != "GET /echo" {
		t.Errorf("span name %q, want the route pattern", span.Name())
	}

	m := traceparentRE.FindStringSubmatch(resp.Header.Get("Traceparent"))
	if m == nil || m[1] != incomingTrace || m[2] != span.SpanContext().SpanID().String() {
		t.Errorf("response traceparent %q, want trace %s span %s", resp.Header.Get("Traceparent"), incomingTrace, span.SpanContext().SpanID())
	}

	var s seen
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if s.TraceID != incomingTrace || s.Correlation != incomingTrace {
		t.Errorf("event metadata trace %q correlation %q, want %s", s.TraceID, s.Correlation, incomingTrace)
	}
}

func TestRequestContextHostileHeaders(t *testing.T) {
	h := newHarness(t, Options{}, func(s *Server) { s.Public().HandleFunc("GET /echo", echoContext) })
	euro := strings.Repeat("€", 100) // 300 bytes, 3 per rune
	tests := []struct {
		name            string
		header          http.Header
		wantCorrelation string // "" means: the request's own trace id
		wantUA          string
		honourTrace     bool
	}{
		{name: "sane request id", header: http.Header{"X-Request-Id": {"req-123_abc.DEF"}}, wantCorrelation: "req-123_abc.DEF"},
		{name: "request id of 64 characters", header: http.Header{"X-Request-Id": {strings.Repeat("a", 64)}}, wantCorrelation: strings.Repeat("a", 64)},
		{name: "request id of 65 characters", header: http.Header{"X-Request-Id": {strings.Repeat("a", 65)}}},
		{name: "request id with markup", header: http.Header{"X-Request-Id": {"<script>alert(1)</script>"}}},
		{name: "request id with log syntax", header: http.Header{"X-Request-Id": {`a","level":"ERROR`}}},
		{name: "request id with spaces", header: http.Header{"X-Request-Id": {"a b"}}},
		{name: "request id with non-ASCII", header: http.Header{"X-Request-Id": {"réq"}}},
		{name: "two request ids", header: http.Header{"X-Request-Id": {"one", "two"}}},
		{name: "empty request id", header: http.Header{"X-Request-Id": {""}}},
		{name: "huge user agent is truncated", header: http.Header{"User-Agent": {strings.Repeat("A", 10000)}}, wantUA: strings.Repeat("A", 256)},
		{name: "user agent cut at a rune boundary", header: http.Header{"User-Agent": {euro}}, wantUA: strings.Repeat("€", 85)},
		{name: "user agent with invalid UTF-8", header: http.Header{"User-Agent": {"app\xff/1"}}, wantUA: "app\uFFFD/1"},
		{name: "malformed traceparent starts a new trace", header: http.Header{"Traceparent": {"00-zzzz-" + incomingParent + "-01"}}},
		{name: "traceparent with a zero trace id", header: http.Header{"Traceparent": {"00-00000000000000000000000000000000-" + incomingParent + "-01"}}},
		{name: "valid traceparent and request id", header: http.Header{"Traceparent": {"00-" + incomingTrace + "-" + incomingParent + "-01"}, "X-Request-Id": {"r1"}}, wantCorrelation: "r1", honourTrace: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.header.Get("User-Agent") == "" {
				tt.header.Set("User-Agent", "strongroom-test/1")
				if tt.wantUA == "" {
					tt.wantUA = "strongroom-test/1"
				}
			}
			resp, body := h.do(t, http.MethodGet, h.publicURL("/echo"), tt.header, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var s seen
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatal(err)
			}
			m := traceparentRE.FindStringSubmatch(resp.Header.Get("Traceparent"))
			if m == nil {
				t.Fatalf("response traceparent %q", resp.Header.Get("Traceparent"))
			}
			if s.TraceID != m[1] {
				t.Errorf("event trace id %s, response says %s", s.TraceID, m[1])
			}
			if (m[1] == incomingTrace) != tt.honourTrace {
				t.Errorf("trace %s: honoured = %v, want %v", m[1], m[1] == incomingTrace, tt.honourTrace)
			}
			want := tt.wantCorrelation
			if want == "" {
				want = m[1]
			}
			if s.Correlation != want || resp.Header.Get("X-Request-Id") != want {
				t.Errorf("correlation %q (header %q), want %q", s.Correlation, resp.Header.Get("X-Request-Id"), want)
			}
			if s.Personal == nil || s.Personal.IP != "127.0.0.1" {
				t.Errorf("personal %+v, want IP 127.0.0.1", s.Personal)
			} else if s.Personal.UserAgent != tt.wantUA || len(s.Personal.UserAgent) > 256 || !utf8.ValidString(s.Personal.UserAgent) {
				t.Errorf("user agent %q (%d bytes), want %q", s.Personal.UserAgent, len(s.Personal.UserAgent), tt.wantUA)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"127.0.0.1:5555", "127.0.0.1"},
		{"[::1]:5555", "::1"},
		{"[::ffff:10.1.2.3]:5555", "10.1.2.3"},
		{"[fe80::1%eth0]:5555", "fe80::1"},
		{"", ""},
		{"not an address", ""},
		{"@", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := clientIP(tt.in); got != tt.want {
				t.Errorf("clientIP(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestEventsNameTheRequest follows one request into the event log: the
// event it appends carries the request's trace id, correlation id and
// client data, so the audit trail can name the request.
func TestEventsNameTheRequest(t *testing.T) {
	store := memstore.New()
	defer store.Close()
	h := newHarness(t, Options{}, func(s *Server) {
		s.Public().HandleFunc("POST /enroll", func(w http.ResponseWriter, r *http.Request) {
			if _, err := store.Append(r.Context(), storetest.Enroll("dev-1", "alice")); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
	})
	resp, _ := h.do(t, http.MethodPost, h.publicURL("/enroll"), http.Header{
		"Traceparent":  {"00-" + incomingTrace + "-" + incomingParent + "-01"},
		"X-Request-Id": {"req-42"},
		"User-Agent":   {"BankApp/7.1"},
	}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	evs, err := store.ReadStream(t.Context(), "dev-1", 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("events: %d, %v", len(evs), err)
	}
	ev := evs[0]
	if ev.Metadata.TraceID() != incomingTrace || ev.Metadata.CorrelationID != "req-42" {
		t.Errorf("event metadata %+v does not name the request", ev.Metadata)
	}
	if ev.Personal == nil || ev.Personal.IP != "127.0.0.1" || ev.Personal.UserAgent != "BankApp/7.1" {
		t.Errorf("personal part = %+v", ev.Personal)
	}
}
