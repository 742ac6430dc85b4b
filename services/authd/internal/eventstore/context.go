package eventstore

import (
	"context"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

type metadataKey struct{}
type personalKey struct{}

// WithMetadata returns a context whose appends carry m (actor, causation,
// correlation). Trace context is not taken from m but from the span in ctx.
func WithMetadata(ctx context.Context, m Metadata) context.Context {
	return context.WithValue(ctx, metadataKey{}, m)
}

// WithActor returns a context whose appends name a as their actor, keeping
// the rest of the metadata already in ctx.
func WithActor(ctx context.Context, a Actor) context.Context {
	m, _ := ctx.Value(metadataKey{}).(Metadata)
	m.Actor = a
	return WithMetadata(ctx, m)
}

// WithPersonal returns a context whose appends carry p as personal data.
func WithPersonal(ctx context.Context, p Personal) context.Context {
	return context.WithValue(ctx, personalKey{}, p)
}

var traceContext = propagation.TraceContext{}

// MetadataFrom returns the metadata an append in ctx is stored with: the
// values of WithMetadata, an actor of kind "system" if none was named, and
// the W3C trace context of the current span.
func MetadataFrom(ctx context.Context) Metadata {
	m, _ := ctx.Value(metadataKey{}).(Metadata)
	if m.Actor.Kind == "" {
		m.Actor = Actor{Kind: "system", ID: "authd"}
	}
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	m.TraceParent = carrier.Get("traceparent")
	m.TraceState = carrier.Get("tracestate")
	return m
}

// PersonalFrom returns the personal data an append in ctx is stored with,
// or nil when there is none.
func PersonalFrom(ctx context.Context) *Personal {
	p, ok := ctx.Value(personalKey{}).(Personal)
	if !ok || p == (Personal{}) {
		return nil
	}
	return &p
}

// Once is a one-time value (a DPoP proof's jti) that a request's first
// append records in its own transaction: recording it costs no commit of
// its own, and a value recorded before makes that append fail with
// ErrReplayed and write nothing. Once the append commits, Recorded is true;
// a request that never appended records the value itself before answering.
type Once struct {
	Scope string
	Value string
	// Until is when the record may be forgotten.
	Until time.Time

	recorded atomic.Bool
}

// Recorded reports whether an append committed the value.
func (o *Once) Recorded() bool { return o.recorded.Load() }

// MarkRecorded is for adapters: the value committed with an append.
func (o *Once) MarkRecorded() { o.recorded.Store(true) }

type onceKey struct{}

// WithOnce returns a context whose next append also records o.
func WithOnce(ctx context.Context, o *Once) context.Context {
	return context.WithValue(ctx, onceKey{}, o)
}

// PendingOnce returns the one-time value an append in ctx must record, or
// nil when there is none or it is already recorded.
func PendingOnce(ctx context.Context) *Once {
	o, _ := ctx.Value(onceKey{}).(*Once)
	if o == nil || o.Recorded() {
		return nil
	}
	return o
}
