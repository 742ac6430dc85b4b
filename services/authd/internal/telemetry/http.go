package telemetry

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HTTPMiddleware starts a server span for every request with otelhttp.
// A valid incoming traceparent makes the span its child (same trace id);
// a missing or malformed one starts a new trace. The response carries a
// traceparent header naming the server span, so a client can quote it in a
// support ticket and it matches the logs and the audit trail.
//
// tp may be nil to use the global provider (set by Setup).
func HTTPMiddleware(operation string, tp trace.TracerProvider) func(http.Handler) http.Handler {
	opts := []otelhttp.Option{otelhttp.WithPropagators(Propagator)}
	if tp != nil {
		opts = append(opts, otelhttp.WithTracerProvider(tp))
	}
	return func(next http.Handler) http.Handler {
		return otelhttp.NewHandler(responseTraceparent(next), operation, opts...)
	}
}

// responseTraceparent writes the server span's trace context into the
// response headers before the handler can write a status.
func responseTraceparent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Propagator.Inject(r.Context(), propagation.HeaderCarrier(w.Header()))
		next.ServeHTTP(w, r)
	})
}
