package pgstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/eventstore/storetest"
	"strongroom.dev/services/authd/internal/pgtest"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/readmodel"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	pool := pgtest.Pool(b)
	if _, err := Migrate(context.Background(), pool); err != nil {
		b.Fatal(err)
	}
	return New(pool)
}

// BenchmarkAppendOneStream appends one event at a time to a single stream,
// each with its expected version: the rate one aggregate can change.
func BenchmarkAppendOneStream(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	if _, err := s.Append(ctx, storetest.Enroll("dev-0", "u")); err != nil {
		b.Fatal(err)
	}
	v := int64(1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Append(ctx, storetest.Then("dev-0", v, storetest.Lock("x"))); err != nil {
			b.Fatal(err)
		}
		v++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendManyStreams appends new streams from 1, 8 and 32
// goroutines at once.
func BenchmarkAppendManyStreams(b *testing.B) {
	for _, conc := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / conc
			for g := range conc {
				n := per
				if g == 0 {
					n += b.N % conc
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						id := fmt.Sprintf("dev-%d", next.Add(1))
						if _, err := s.Append(ctx, storetest.Enroll(id, "u")); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// observed records when a projection applies each event.
type observed struct {
	projection.Projection
	seen chan eventstore.Event
}

func (o *observed) Apply(cur *projection.Doc, ev eventstore.Event) (*projection.Doc, error) {
	d, err := o.Projection.Apply(cur, ev)
	o.seen <- ev
	return d, err
}

// BenchmarkProjectionLatency measures commit-to-projection latency: from
// the moment Append returns (committed) to the moment the projection
// handler applies the event, with LISTEN/NOTIFY wake-ups (the default) and
// with polling alone (the watermill-sql default of 1 s), idle and under 8
// concurrent writers. It reports p50 and p99 in milliseconds.
func BenchmarkProjectionLatency(b *testing.B) {
	type mode struct {
		name    string
		notify  bool
		writers int
	}
	for _, m := range []mode{{"notify/idle", true, 1}, {"notify/writers=8", true, 8}, {"poll-1s/idle", false, 1}} {
		b.Run(m.name, func(b *testing.B) {
			pool := pgtest.Pool(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if _, err := Migrate(ctx, pool); err != nil {
				b.Fatal(err)
			}
			obs := &observed{Projection: readmodel.Devices(events.Default), seen: make(chan eventstore.Event, 1024)}
			s := New(pool)
			w := NewWaker(nil, quiet)
			if m.notify {
				w = runWaker(b, pool)
			}
			p, err := NewProjector(s, w, quiet, []projection.Projection{obs}, WithIdlePoll(time.Second))
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Setup(ctx); err != nil {
				b.Fatal(err)
			}
			go func() { _ = p.Run(ctx) }()
			time.Sleep(100 * time.Millisecond)

			var mu sync.Mutex
			committed := map[string]time.Time{}
			var lat []time.Duration
			var next atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			per := max(1, b.N/m.writers)
			for range m.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						id := fmt.Sprintf("dev-%d", next.Add(1))
						if _, err := s.Append(ctx, storetest.Enroll(id, "u")); err != nil {
							b.Error(err)
							return
						}
						mu.Lock()
						committed[id] = time.Now()
						mu.Unlock()
						if m.writers == 1 {
							// Idle: wait for this one before the next.
							ev := <-obs.seen
							mu.Lock()
							lat = append(lat, time.Since(committed[ev.StreamID]))
							mu.Unlock()
						}
					}
				}()
			}
			if m.writers > 1 {
				for range per * m.writers {
					ev := <-obs.seen
					now := time.Now()
					mu.Lock()
					c, ok := committed[ev.StreamID]
					mu.Unlock()
					for !ok { // the handler beat the writer's bookkeeping
						time.Sleep(time.Microsecond)
						mu.Lock()
						c, ok = committed[ev.StreamID]
						mu.Unlock()
					}
					lat = append(lat, max(0, now.Sub(c)))
				}
			}
			wg.Wait()
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			pct := func(q float64) float64 {
				return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(len(lat)), "samples")
		})
	}
}
