package memstore

import (
	"context"
	"sync"
	"time"
)

// OneTime remembers one-time values in memory (dev mode: one process).
type OneTime struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[[2]string]time.Time
}

// NewOneTime returns an empty in-memory one-time value store.
func NewOneTime(now func() time.Time) *OneTime {
	return &OneTime{now: now, m: map[[2]string]time.Time{}}
}

// Remember records value under scope until the given time.
func (o *OneTime) Remember(_ context.Context, scope, value string, until time.Time) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k := [2]string{scope, value}
	if exp, ok := o.m[k]; ok && exp.After(o.now()) {
		return false, nil
	}
	o.m[k] = until
	return true, nil
}

// forget drops a value an append recorded and then could not commit.
func (o *OneTime) forget(scope, value string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, [2]string{scope, value})
}

// Seen reports whether value is recorded under scope and not expired.
func (o *OneTime) Seen(_ context.Context, scope, value string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	exp, ok := o.m[[2]string{scope, value}]
	return ok && exp.After(o.now()), nil
}

// Sweep deletes expired values.
func (o *OneTime) Sweep(context.Context) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var n int64
	for k, exp := range o.m {
		if !exp.After(o.now()) {
			delete(o.m, k)
			n++
		}
	}
	return n, nil
}
