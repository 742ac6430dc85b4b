package service

import (
	"context"
	"sync"
	"time"

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
	mu      sync.Mutex
	sts     []projection.Status
	backlog int64
}

func (c *lagCache) set(sts []projection.Status, backlog int64) {
	c.mu.Lock()
	c.sts, c.backlog = sts, backlog
	c.mu.Unlock()
}

func (c *lagCache) get() []projection.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sts
}

func (c *lagCache) outbox() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backlog
}

// Lag returns the last measured status of every projection.
func (a *App) Lag() []projection.Status { return a.lag.get() }

// watchLag measures projection lag and the outbox backlog periodically
// and publishes them, with the passcode hashing pool's queue, as the gauges
// strongroom_projection_lag_events, strongroom_projection_lag_seconds,
// strongroom_outbox_backlog_messages, strongroom_passcode_hash_queue and
// strongroom_passcode_hash_workers.
func (a *App) watchLag(ctx context.Context) error {
	meter := a.Metrics.Meter
	events, err := meter.Int64ObservableGauge("strongroom.projection.lag.events",
		metric.WithDescription("Events appended but not yet applied to the read model."))
	if err != nil {
		return err
	}
	seconds, err := meter.Float64ObservableGauge("strongroom.projection.lag.seconds",
		metric.WithDescription("Age of the oldest event not yet applied to the read model."))
	if err != nil {
		return err
	}
	backlog, err := meter.Int64ObservableGauge("strongroom.outbox.backlog.messages",
		metric.WithDescription("Outbox messages not yet acknowledged by every subscriber."))
	if err != nil {
		return err
	}
	queue, err := meter.Int64ObservableGauge("strongroom.passcode.hash.queue",
		metric.WithDescription("Passcode hashes waiting for a worker of the bounded Argon2id pool."))
	if err != nil {
		return err
	}
	workers, err := meter.Int64ObservableGauge("strongroom.passcode.hash.workers",
		metric.WithDescription("Workers of the Argon2id pool."))
	if err != nil {
		return err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, st := range a.lag.get() {
			attrs := metric.WithAttributes(attribute.String("projection", st.Name))
			o.ObserveInt64(events, st.LagEvents, attrs)
			o.ObserveFloat64(seconds, st.LagSeconds, attrs)
		}
		if a.outboxBacklog != nil {
			o.ObserveInt64(backlog, a.lag.outbox())
		}
		if a.Hasher != nil {
			st := a.Hasher.Stats()
			o.ObserveInt64(queue, int64(st.Waiting))
			o.ObserveInt64(workers, int64(st.Workers))
		}
		return nil
	}, events, seconds, backlog, queue, workers)
	if err != nil {
		return err
	}
	defer func() { _ = reg.Unregister() }()
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		sts, err := a.ReadModels.Status(ctx)
		var outbox int64
		if err == nil && a.outboxBacklog != nil {
			outbox, err = a.outboxBacklog(ctx)
		}
		if err == nil {
			a.lag.set(sts, outbox)
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
