package service

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"strongroom.dev/services/authd/internal/projection"
)

// lagInterval is how often projection lag is measured. Scrapes read the
// last measurement, so a scrape storm never turns into a query storm.
const lagInterval = 5 * time.Second

// lagWarnAfter is the lag at which authd logs a warning.
const lagWarnAfter = 30 * time.Second

type lagCache struct {
	mu  sync.Mutex
	sts []projection.Status
}

func (c *lagCache) set(sts []projection.Status) {
	c.mu.Lock()
	c.sts = sts
	c.mu.Unlock()
}

func (c *lagCache) get() []projection.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sts
}

// Lag returns the last measured status of every projection.
func (a *App) Lag() []projection.Status { return a.lag.get() }

// watchLag measures projection lag periodically and publishes it as the
// OpenTelemetry gauges strongroom.projection.lag.events and
// strongroom.projection.lag.seconds (exported once a meter provider is
// configured).
func (a *App) watchLag(ctx context.Context) error {
	meter := otel.Meter("strongroom.dev/services/authd")
	events, err := meter.Int64ObservableGauge("strongroom.projection.lag.events",
		metric.WithDescription("Events appended but not yet applied to the read model."))
	if err != nil {
		return err
	}
	seconds, err := meter.Float64ObservableGauge("strongroom.projection.lag.seconds",
		metric.WithDescription("Age of the oldest event not yet applied to the read model."), metric.WithUnit("s"))
	if err != nil {
		return err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, st := range a.lag.get() {
			attrs := metric.WithAttributes(attribute.String("projection", st.Name))
			o.ObserveInt64(events, st.LagEvents, attrs)
			o.ObserveFloat64(seconds, st.LagSeconds, attrs)
		}
		return nil
	}, events, seconds)
	if err != nil {
		return err
	}
	defer func() { _ = reg.Unregister() }()
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		sts, err := a.ReadModels.Status(ctx)
		if err == nil {
			a.lag.set(sts)
			for _, st := range sts {
				if st.LagSeconds > lagWarnAfter.Seconds() {
					a.log.WarnContext(ctx, "projection is lagging", "projection", st.Name,
						"lag_events", st.LagEvents, "lag_seconds", st.LagSeconds)
				}
			}
		} else if ctx.Err() == nil {
			a.log.WarnContext(ctx, "measure projection lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
