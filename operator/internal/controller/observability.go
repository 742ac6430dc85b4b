package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"strongroom.dev/api/v1alpha1"
)

// Traces and metrics of the reconcilers.

// The kinds, as span names and the kind label say them.
const (
	kindPinnedCertificate = "PinnedCertificate"
	kindKeySet            = "KeySet"
)

// instrumentationName names the tracer and the meter.
const instrumentationName = "strongroom.dev/operator"

// The Prometheus names of the gauges. Alert rules and the Grafana
// dashboard are written against these names and their labels: do not
// change them.
const (
	// MetricTransition is the seconds until an object's next planned
	// transition (labels kind, namespace, name); negative when overdue.
	MetricTransition = "strongroom_operator_transition_seconds"
	// MetricCertificateExpiry is the seconds until a PinnedCertificate's
	// served certificate expires (labels namespace, name).
	MetricCertificateExpiry = "strongroom_operator_certificate_expiry_seconds"
)

// startSpan starts the span of one reconcile of kind. tp nil means the
// global provider (off unless the operator was told where to export).
func startSpan(ctx context.Context, tp trace.TracerProvider, kind string, req ctrl.Request) (context.Context, trace.Span) {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(instrumentationName).Start(ctx, "reconcile "+kind, trace.WithAttributes(
		attribute.String("k8s.namespace.name", req.Namespace),
		// As semantic conventions name Kubernetes objects: k8s.<kind>.name.
		attribute.String("k8s."+strings.ToLower(kind)+".name", req.Name),
	))
}

// endSpan records the outcome of a reconcile: its error (the work queue
// retries with backoff) or when it comes back.
func endSpan(span trace.Span, res ctrl.Result, err error) {
	switch {
	case err != nil:
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	case res.RequeueAfter > 0:
		span.SetAttributes(attribute.Float64("strongroom.reconcile.requeue_after_seconds", res.RequeueAfter.Seconds()))
	}
	span.End()
}

// recordWaitingError records on the reconcile's span an error that is not
// returned to the work queue (retrying would not help: it waits for a new
// spec), so the trace still shows the reconcile failed.
func recordWaitingError(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// Metrics are the gauges of how long each object has until its next
// transition and, for a PinnedCertificate, until its served certificate
// expires. They are computed at each scrape from the times in the status
// each object last had written, with the clock of the reconciler that
// wrote it, so that an operator that stops reconciling shows the times
// running out (and past: negative) rather than stale values. A nil
// *Metrics records nothing.
type Metrics struct {
	mu     sync.Mutex
	series map[seriesKey]deadlines
}

type seriesKey struct {
	kind string
	types.NamespacedName
}

// deadlines are the times of one object's status; zero when the status
// has none.
type deadlines struct {
	clock      clock.PassiveClock
	transition time.Time
	expiry     time.Time // PinnedCertificates only
}

// NewMetrics registers the gauges with mp (in the operator, a
// telemetry.MeterProvider on controller-runtime's metrics registry).
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	m := &Metrics{series: map[seriesKey]deadlines{}}
	meter := mp.Meter(instrumentationName)
	transition, err := meter.Float64ObservableGauge(MetricTransition, metric.WithUnit("s"),
		metric.WithDescription("Seconds until the next planned transition of a PinnedCertificate (status.nextRotationTime) "+
			"or KeySet (status.nextTransitionTime); negative when overdue."))
	if err != nil {
		return nil, fmt.Errorf("gauge %s: %w", MetricTransition, err)
	}
	expiry, err := meter.Float64ObservableGauge(MetricCertificateExpiry, metric.WithUnit("s"),
		metric.WithDescription("Seconds until the certificate a PinnedCertificate serves expires (status.notAfter); negative once expired."))
	if err != nil {
		return nil, fmt.Errorf("gauge %s: %w", MetricCertificateExpiry, err)
	}
	if _, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		for k, d := range m.series {
			now := d.clock.Now()
			ns, name := attribute.String("namespace", k.Namespace), attribute.String("name", k.Name)
			if !d.transition.IsZero() {
				o.ObserveFloat64(transition, d.transition.Sub(now).Seconds(), metric.WithAttributes(attribute.String("kind", k.kind), ns, name))
			}
			if !d.expiry.IsZero() {
				o.ObserveFloat64(expiry, d.expiry.Sub(now).Seconds(), metric.WithAttributes(ns, name))
			}
		}
		return nil
	}, transition, expiry); err != nil {
		return nil, fmt.Errorf("gauge callback: %w", err)
	}
	return m, nil
}

// set makes d the times of the object kind/key.
func (m *Metrics) set(kind string, key types.NamespacedName, d deadlines) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.series[seriesKey{kind, key}] = d
}

// forget drops the series of a deleted object.
func (m *Metrics) forget(kind string, key types.NamespacedName) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.series, seriesKey{kind, key})
}

func pinnedCertificateDeadlines(st *v1alpha1.PinnedCertificateStatus, clk clock.PassiveClock) deadlines {
	d := deadlines{clock: clk}
	if st.NextRotationTime != nil {
		d.transition = st.NextRotationTime.Time
	}
	if st.NotAfter != nil {
		d.expiry = st.NotAfter.Time
	}
	return d
}

func keySetDeadlines(st *v1alpha1.KeySetStatus, clk clock.PassiveClock) deadlines {
	d := deadlines{clock: clk}
	if st.NextTransitionTime != nil {
		d.transition = st.NextTransitionTime.Time
	}
	return d
}
