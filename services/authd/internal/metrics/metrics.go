// Package metrics holds authd's OpenTelemetry instruments and exposes them,
// with the Go runtime's and the process's, in the Prometheus text format
// on the internal listener's /metrics. Each authd instance has its own
// provider and registry (no globals), so instances in one test process do
// not count each other's work.
//
// The Prometheus names are a contract with the alert rules and the
// dashboard under charts/strongroom/files: change them together.
package metrics

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Meter name of authd's instruments.
const meterName = "strongroom.dev/services/authd"

// Metrics are authd's instruments. A nil *Metrics counts nothing.
type Metrics struct {
	Provider *sdkmetric.MeterProvider
	// Handler serves the Prometheus text format.
	Handler http.Handler
	Meter   metric.Meter

	grants        metric.Int64Counter
	tokenDuration metric.Float64Histogram
	lockouts      metric.Int64Counter
	reuse         metric.Int64Counter
}

// New builds the provider, its Prometheus registry and the instruments.
func New() (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	m := &Metrics{Provider: mp, Meter: mp.Meter(meterName),
		Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})}
	if m.grants, err = m.Meter.Int64Counter("strongroom.grants",
		metric.WithDescription("Token requests by grant type and outcome: issued, or the refusal's code.")); err != nil {
		return nil, err
	}
	if m.tokenDuration, err = m.Meter.Float64Histogram("strongroom.token.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to answer a token request, by grant type."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)); err != nil {
		return nil, err
	}
	if m.lockouts, err = m.Meter.Int64Counter("strongroom.device.lockouts",
		metric.WithDescription("Devices locked, by reason: passcode_failures or back_office.")); err != nil {
		return nil, err
	}
	if m.reuse, err = m.Meter.Int64Counter("strongroom.refresh.reuse.detected",
		metric.WithDescription("Refresh tokens presented again after their successor was used: each ended a session.")); err != nil {
		return nil, err
	}
	// Series an alert compares over time exist from the start, at zero:
	// "no series" and "none happened" must look the same to a rule.
	ctx := context.Background()
	for _, reason := range []string{"passcode_failures", "back_office"} {
		m.lockouts.Add(ctx, 0, metric.WithAttributes(attribute.String("reason", reason)))
	}
	m.reuse.Add(ctx, 0)
	return m, nil
}

// Grant counts a token request and its duration in seconds.
func (m *Metrics) Grant(ctx context.Context, grantType, outcome string, seconds float64) {
	if m == nil {
		return
	}
	gt := attribute.String("grant_type", grantType)
	m.grants.Add(ctx, 1, metric.WithAttributes(gt, attribute.String("outcome", outcome)))
	m.tokenDuration.Record(ctx, seconds, metric.WithAttributes(gt))
}

// Lockout counts a device lock.
func (m *Metrics) Lockout(ctx context.Context, reason string) {
	if m == nil {
		return
	}
	m.lockouts.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

// ReuseDetected counts a refresh-token reuse.
func (m *Metrics) ReuseDetected(ctx context.Context) {
	if m == nil {
		return
	}
	m.reuse.Add(ctx, 1)
}

// Shutdown stops the provider.
func (m *Metrics) Shutdown(ctx context.Context) error {
	if m == nil {
		return nil
	}
	return m.Provider.Shutdown(ctx)
}
