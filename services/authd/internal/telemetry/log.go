package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns authd's logger: JSON lines on w, at level and above,
// each record carrying the trace_id and span_id of its context's span.
func NewLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(NewLogHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}

// NewLogHandler wraps h so that a record logged with a context holding a
// valid span gets trace_id and span_id attributes: logs and traces can then
// be joined without passing ids around by hand. Use the *Context logging
// methods (InfoContext, ...) for this to work.
//
// The ids are added to the record, so inside a WithGroup they appear in
// that group, like every other attribute of the record.
func NewLogHandler(h slog.Handler) slog.Handler {
	return traceHandler{h}
}

type traceHandler struct{ next slog.Handler }

func (h traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		// Clone: the caller's record may share its attribute slice.
		r = r.Clone()
		r.AddAttrs(
			slog.String("trace_id", sc.TraceID().String()),
			slog.String("span_id", sc.SpanID().String()),
		)
	}
	return h.next.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return traceHandler{h.next.WithAttrs(attrs)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.next.WithGroup(name)}
}
