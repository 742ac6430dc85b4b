package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// Check reports whether one dependency can serve traffic; it must return
// promptly when ctx is done.
type Check func(ctx context.Context) error

// Readiness answers /readyz: 200 only when the server has started and every
// check passes within the timeout, else 503 naming the checks that did not.
//
// The answer gives a short reason per check ("timeout", "failed",
// "panic"), never the error text: errors from drivers can quote a DSN, a
// host name or worse, and /readyz is read by whatever can reach the
// internal listener. The error itself is logged.
type Readiness struct {
	timeout time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	checks   map[string]Check
	started  bool
	inflight *evaluation
}

// evaluation is one run of the checks, shared by the probes that arrive
// while it runs, so that a burst of probes costs the database one query.
type evaluation struct {
	done    chan struct{}
	ok      bool
	reasons map[string]string
}

// Reasons reported per check.
const (
	reasonOK       = "ok"
	reasonFailed   = "failed"
	reasonTimeout  = "timeout"
	reasonPanic    = "panic"
	reasonStarting = "starting"
)

var checkName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// NewReadiness returns a Readiness that is not started and has no checks.
func NewReadiness(timeout time.Duration, log *slog.Logger) *Readiness {
	return &Readiness{timeout: timeout, log: log, checks: map[string]Check{}}
}

// Add registers a named check. Names are short lowercase identifiers
// ("database", "outbox"); a duplicate or malformed name is a programming
// error and panics, like http.ServeMux does for duplicate patterns.
func (r *Readiness) Add(name string, c Check) {
	if !checkName.MatchString(name) || name == "startup" {
		panic(fmt.Sprintf("httpserver: invalid readiness check name %q", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.checks[name]; dup {
		panic(fmt.Sprintf("httpserver: readiness check %q registered twice", name))
	}
	r.checks[name] = c
}

// MarkStarted declares startup finished (application open, routes
// registered). Until then /readyz answers 503 with startup "starting".
func (r *Readiness) MarkStarted() {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
}

// Evaluate runs the checks (or joins a run in progress) and returns
// whether all passed, with a reason per check.
func (r *Readiness) Evaluate(ctx context.Context) (bool, map[string]string) {
	r.mu.Lock()
	if !r.started {
		r.mu.Unlock()
		return false, map[string]string{"startup": reasonStarting}
	}
	if e := r.inflight; e != nil {
		r.mu.Unlock()
		select {
		case <-e.done:
			return e.ok, maps.Clone(e.reasons)
		case <-ctx.Done():
			return false, map[string]string{"probe": reasonTimeout}
		}
	}
	e := &evaluation{done: make(chan struct{})}
	r.inflight = e
	checks := maps.Clone(r.checks)
	r.mu.Unlock()

	// Detached from the first caller: the probes that joined still want
	// the answer if that caller goes away.
	e.ok, e.reasons = r.run(context.WithoutCancel(ctx), checks)

	r.mu.Lock()
	r.inflight = nil
	r.mu.Unlock()
	close(e.done)
	return e.ok, maps.Clone(e.reasons)
}

type result struct {
	name string
	err  error
}

var errPanic = errors.New("readiness check panicked")

// run evaluates the checks in parallel. A check still running at the
// timeout is reported as such and left to finish in the background.
func (r *Readiness) run(ctx context.Context, checks map[string]Check) (bool, map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	results := make(chan result, len(checks))
	for name, check := range checks {
		go func() {
			defer func() {
				if p := recover(); p != nil {
					results <- result{name, fmt.Errorf("%w: %v", errPanic, p)}
				}
			}()
			results <- result{name, check(ctx)}
		}()
	}

	reasons := make(map[string]string, len(checks))
	for name := range checks {
		reasons[name] = reasonTimeout
	}
	ok := true
	for range checks {
		select {
		case res := <-results:
			reasons[res.name] = reasonFor(res.err)
			if res.err != nil {
				ok = false
				r.log.WarnContext(ctx, "readiness check failed", "check", res.name, "error", res.err)
			}
		case <-ctx.Done():
			for name, reason := range reasons {
				if reason == reasonTimeout {
					r.log.WarnContext(ctx, "readiness check timed out", "check", name, "timeout", r.timeout)
				}
			}
			return false, reasons
		}
	}
	return ok, reasons
}

func reasonFor(err error) string {
	switch {
	case err == nil:
		return reasonOK
	case errors.Is(err, errPanic):
		return reasonPanic
	case errors.Is(err, context.DeadlineExceeded):
		return reasonTimeout
	default:
		return reasonFailed
	}
}

type readyzBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// ServeHTTP answers /readyz.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ok, reasons := r.Evaluate(req.Context())
	body := readyzBody{Status: "ok", Checks: reasons}
	status := http.StatusOK
	if !ok {
		body.Status, status = "unavailable", http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}

// healthz is liveness: the process serves HTTP. It checks no dependency,
// so a database outage makes pods unready, never restarts them.
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
