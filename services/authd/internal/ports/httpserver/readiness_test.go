package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// errDSN looks like a driver error that quotes its connection string.
var errDSN = errors.New(`failed to connect to "postgres://authd:hunter2@db:5432/authd": connection refused`)

func TestReadinessToggles(t *testing.T) {
	var dbErr atomic.Pointer[error]
	var outboxMode atomic.Value // "ok", "slow", "panic"
	outboxMode.Store("ok")
	h := newHarness(t, Options{ReadinessTimeout: 300 * time.Millisecond}, func(s *Server) {
		s.Readiness().Add("database", func(ctx context.Context) error {
			if p := dbErr.Load(); p != nil {
				return *p
			}
			return nil
		})
		s.Readiness().Add("outbox", func(ctx context.Context) error {
			switch outboxMode.Load() {
			case "slow":
				time.Sleep(time.Second) // ignores ctx, as a buggy check would
			case "panic":
				panic("outbox check bug")
			}
			return nil
		})
	})
	setDB := func(err error) {
		if err == nil {
			dbErr.Store(nil)
		} else {
			dbErr.Store(&err)
		}
	}

	steps := []struct {
		name       string
		arrange    func()
		wantStatus int
		wantChecks map[string]string
		maxTime    time.Duration
	}{
		{
			name:       "not started",
			wantStatus: 503,
			wantChecks: map[string]string{"startup": "starting"},
		},
		{
			name:       "started, all pass",
			arrange:    func() { h.srv.Readiness().MarkStarted() },
			wantStatus: 200,
			wantChecks: map[string]string{"database": "ok", "outbox": "ok"},
		},
		{
			name:       "database fails",
			arrange:    func() { setDB(errDSN) },
			wantStatus: 503,
			wantChecks: map[string]string{"database": "failed", "outbox": "ok"},
		},
		{
			name:       "database times out",
			arrange:    func() { setDB(fmt.Errorf("ping: %w", context.DeadlineExceeded)) },
			wantStatus: 503,
			wantChecks: map[string]string{"database": "timeout", "outbox": "ok"},
		},
		{
			name:       "database back",
			arrange:    func() { setDB(nil) },
			wantStatus: 200,
			wantChecks: map[string]string{"database": "ok", "outbox": "ok"},
		},
		{
			name:       "a check that ignores its context is cut at the timeout",
			arrange:    func() { outboxMode.Store("slow") },
			wantStatus: 503,
			wantChecks: map[string]string{"database": "ok", "outbox": "timeout"},
			maxTime:    1500 * time.Millisecond,
		},
		{
			name:       "a panicking check",
			arrange:    func() { time.Sleep(time.Second); outboxMode.Store("panic") },
			wantStatus: 503,
			wantChecks: map[string]string{"database": "ok", "outbox": "panic"},
		},
		{
			name:       "all pass again",
			arrange:    func() { outboxMode.Store("ok") },
			wantStatus: 200,
			wantChecks: map[string]string{"database": "ok", "outbox": "ok"},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.arrange != nil {
				st.arrange()
			}
			start := time.Now()
			resp, body := h.do(t, http.MethodGet, h.adminURL("/readyz"), nil, nil)
			if st.maxTime > 0 && time.Since(start) > st.maxTime {
				t.Errorf("took %s, want at most %s", time.Since(start), st.maxTime)
			}
			if resp.StatusCode != st.wantStatus {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, st.wantStatus, body)
			}
			var got readyzBody
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			wantStatus := "ok"
			if st.wantStatus != 200 {
				wantStatus = "unavailable"
			}
			if got.Status != wantStatus || fmt.Sprint(got.Checks) != fmt.Sprint(st.wantChecks) {
				t.Errorf("body %+v, want %s %v", got, wantStatus, st.wantChecks)
			}
			for _, leak := range []string{"hunter2", "postgres://", "connection refused", "outbox check bug"} {
				if strings.Contains(string(body), leak) {
					t.Errorf("body leaks %q: %s", leak, body)
				}
			}
		})
	}
	if !strings.Contains(h.logs.String(), "connection refused") {
		t.Error("the failing check's error was not logged")
	}
}

// TestReadinessCoalesces checks that concurrent probes share one run of the
// checks instead of each hitting the database.
func TestReadinessCoalesces(t *testing.T) {
	var calls atomic.Int32
	gate := make(chan struct{})
	r := NewReadiness(5*time.Second, discardLogger())
	r.Add("database", func(ctx context.Context) error {
		calls.Add(1)
		<-gate
		return nil
	})
	r.MarkStarted()

	var wg sync.WaitGroup
	results := make(chan bool, 10)
	for range 10 {
		wg.Go(func() {
			ok, _ := r.Evaluate(context.Background())
			results <- ok
		})
	}
	// Let the probes pile up on the first run, then let it finish.
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(results)
	for ok := range results {
		if !ok {
			t.Error("a probe failed")
		}
	}
	if n := calls.Load(); n < 1 || n > 2 {
		t.Errorf("check ran %d times for 10 concurrent probes", n)
	}
}

func TestReadinessNames(t *testing.T) {
	tests := []struct {
		name      string
		check     string
		wantPanic bool
	}{
		{"plain", "database", false},
		{"with dot and dash", "outbox.lag-ok", false},
		{"empty", "", true},
		{"upper case", "Database", true},
		{"reserved", "startup", true},
		{"json breaking", `db","status":"ok`, true},
		{"too long", strings.Repeat("a", 64), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReadiness(time.Second, discardLogger())
			defer func() {
				if p := recover(); (p != nil) != tt.wantPanic {
					t.Errorf("panic = %v, want panic %v", p, tt.wantPanic)
				}
			}()
			r.Add(tt.check, func(context.Context) error { return nil })
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		r := NewReadiness(time.Second, discardLogger())
		r.Add("database", func(context.Context) error { return nil })
		defer func() {
			if recover() == nil {
				t.Error("duplicate name accepted")
			}
		}()
		r.Add("database", func(context.Context) error { return nil })
	})
}
