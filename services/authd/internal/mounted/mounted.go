// Package mounted reads files that change under a running authd — a
// Kubernetes Secret or ConfigMap mounted as a volume, which the kubelet
// replaces atomically when the operator rotates what is in it — and keeps
// the last good value parsed from them, so new material is picked up
// without a restart and a bad or half-written update is never used.
package mounted

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultInterval is how often the files are looked at again.
const DefaultInterval = time.Second

// Value is what parse made of the files' contents. It is safe for
// concurrent use.
type Value[T any] struct {
	paths    []string
	parse    func(contents [][]byte, cur T) (T, error)
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex
	cur     T
	raw     [][]byte
	checked time.Time
	failing string // the contents that last failed to parse, not logged again
}

// Options tune a Value; the zero value is fine.
type Options struct {
	// Interval between looks at the files (DefaultInterval).
	Interval time.Duration
	// Now is the clock (time.Now).
	Now func() time.Time
	// Log receives a warning when new contents cannot be used.
	Log *slog.Logger
}

// New reads the files once; they must parse. Later changes are picked up
// by Get. parse gets the files' contents in the order of paths, and the
// current value (the zero value the first time), so it can refuse an
// update that would go backwards.
func New[T any](paths []string, parse func(contents [][]byte, cur T) (T, error), o Options) (*Value[T], error) {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	v := &Value[T]{paths: paths, parse: parse, interval: o.Interval, now: o.Now, log: o.Log}
	raw, err := v.read()
	if err != nil {
		return nil, err
	}
	var zero T
	if v.cur, err = parse(raw, zero); err != nil {
		return nil, fmt.Errorf("%s: %w", paths[0], err)
	}
	v.raw, v.checked = raw, o.Now()
	return v, nil
}

// Get returns the current value, after looking at the files again if the
// interval has passed since the last look. Contents that cannot be read or
// parsed (a half-written update, a certificate without its new key yet)
// leave the last good value in place; a warning is logged once for them.
func (v *Value[T]) Get() T {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if now.Sub(v.checked) < v.interval {
		return v.cur
	}
	v.checked = now
	raw, err := v.read()
	if err == nil && equal(raw, v.raw) {
		return v.cur
	}
	var next T
	if err == nil {
		next, err = v.parse(raw, v.cur)
	}
	if err != nil {
		if key := fmt.Sprint(err); key != v.failing {
			v.failing = key
			v.log.Warn("mounted files changed but cannot be used; keeping the last good version",
				"file", v.paths[0], "err", err)
		}
		return v.cur
	}
	v.cur, v.raw, v.failing = next, raw, ""
	v.log.Info("mounted files reloaded", "file", v.paths[0])
	return v.cur
}

func (v *Value[T]) read() ([][]byte, error) {
	out := make([][]byte, len(v.paths))
	for i, p := range v.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		out[i] = b
	}
	return out, nil
}

func equal(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
