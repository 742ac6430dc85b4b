package app

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracer names the spans of the use cases' expensive or security-relevant
// steps (passcode hashing, assertion verification). Their attributes never
// hold a secret: no passcode, code, token or key material.
var tracer = otel.Tracer("strongroom.dev/services/authd/internal/app")

// traced runs f in a span named name; an error ends it with status Error.
func traced[T any](ctx context.Context, name string, f func() (T, error), attrs ...trace.SpanStartOption) (T, error) {
	_, span := tracer.Start(ctx, name, attrs...)
	defer span.End()
	v, err := f()
	if err != nil {
		span.SetStatus(codes.Error, "refused")
	}
	return v, err
}
