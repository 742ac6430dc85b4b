package observability_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/mobileclient"
)

// TestOneTracePerSignIn: a passcode sign-in is one trace. Its spans include
// the HTTP server span, the grant, DPoP verification, the passcode hash,
// the event append, PostgreSQL queries, and — asynchronously, after the
// outbox delivered the events — the devices projection's handling, in the
// same trace and linked to the request. No attribute, event or name of any
// span carries a secret of the run.
func TestOneTracePerSignIn(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{GlobalTracing: true})
	ctx := context.Background()
	const passcode = "918273"
	app, err := mobileclient.New(s.PublicURL, s.Client)
	if err != nil {
		t.Fatal(err)
	}
	code := s.ActivationCode(t, "tracy", "enroll")
	if err := app.Enroll(ctx, code, "Phone", "android"); err != nil {
		t.Fatal(err)
	}
	if err := app.SetPasscode(ctx, passcode, ""); err != nil {
		t.Fatal(err)
	}
	s.Spans.Reset()
	tok, err := app.SignIn(ctx, passcode)
	if err != nil {
		t.Fatal(err)
	}

	var grant tracetest.SpanStub
	for _, sp := range s.Spans.GetSpans() {
		if sp.Name == "oauth2.grant passcode" {
			grant = sp
		}
	}
	if !grant.SpanContext.IsValid() {
		t.Fatalf("no grant span among %v", names(s.Spans.GetSpans()))
	}
	traceID := grant.SpanContext.TraceID()
	// The projection handles the events after the outbox delivered them.
	var inTrace tracetest.SpanStubs
	deadline := time.Now().Add(15 * time.Second)
	for {
		inTrace = inTrace[:0]
		for _, sp := range s.Spans.GetSpans() {
			if sp.SpanContext.TraceID() == traceID {
				inTrace = append(inTrace, sp)
			}
		}
		if slices.ContainsFunc(inTrace, func(sp tracetest.SpanStub) bool { return sp.Name == "projection devices" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no projection span in the sign-in's trace: %v", names(inTrace))
		}
		time.Sleep(20 * time.Millisecond)
	}

	find := func(what string, match func(tracetest.SpanStub) bool) tracetest.SpanStub {
		t.Helper()
		i := slices.IndexFunc(inTrace, match)
		if i < 0 {
			t.Fatalf("no %s span in the sign-in's trace: %v", what, names(inTrace))
		}
		return inTrace[i]
	}
	named := func(n string) func(tracetest.SpanStub) bool {
		return func(sp tracetest.SpanStub) bool { return sp.Name == n }
	}
	server := find("HTTP server", func(sp tracetest.SpanStub) bool { return sp.SpanKind == trace.SpanKindServer })
	if grant.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("the grant span's parent is %s, want the HTTP span %s", grant.Parent.SpanID(), server.SpanContext.SpanID())
	}
	find("DPoP", named("dpop.verify"))
	find("passcode hashing", named("passcode.hash"))
	appendSpan := find("event append", named("eventstore.append"))
	find("PostgreSQL query", func(sp tracetest.SpanStub) bool {
		for _, a := range sp.Attributes {
			if strings.HasPrefix(string(a.Key), "db.") && strings.Contains(strings.ToLower(a.Value.String()), "postgresql") {
				return true
			}
		}
		return false
	})
	proj := find("projection", named("projection devices"))
	if proj.SpanKind != trace.SpanKindConsumer || len(proj.Links) == 0 || proj.Links[0].SpanContext.TraceID() != traceID {
		t.Errorf("projection span: kind %v, links %+v: want a consumer linked to the request", proj.SpanKind, proj.Links)
	}
	if proj.Parent.TraceID() != traceID || !proj.Parent.IsRemote() {
		t.Errorf("projection span's parent %v: want the appending request's span, carried through the outbox", proj.Parent)
	}
	if !appendSpan.EndTime.Before(proj.StartTime) {
		t.Errorf("the projection handled the event before its append ended")
	}

	// No secret in any span of the run.
	raw, err := json.Marshal(s.Spans.GetSpans())
	if err != nil {
		t.Fatal(err)
	}
	all := string(raw)
	for what, secret := range map[string]string{
		"passcode": passcode, "activation code": code, "access token": tok.AccessToken,
		"access token signature": tok.AccessToken[strings.LastIndexByte(tok.AccessToken, '.')+1:],
		"refresh token secret":   tok.RefreshToken[strings.IndexByte(tok.RefreshToken, '.')+1:],
	} {
		if strings.Contains(all, secret) {
			t.Errorf("the %s appears in a span", what)
		}
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, sp := range spans {
		out = append(out, sp.Name)
	}
	return out
}
