package observability_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/mobileclient"
)

// scrape reads the internal listener's /metrics.
func scrape(t *testing.T, s *authdtest.Server) map[string]*dto.MetricFamily {
	t.Helper()
	r := s.Do(t, http.MethodGet, s.AdminURL+"/metrics", nil, "")
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", r.Status, r.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels include
// want; found is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, found bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, w := range want {
			if labels[k] != w {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetricsAfterAJourney: after sign-ins, a refresh, a reused refresh
// token, five wrong passcodes and a back-office lock, /metrics on the
// internal listener holds each metric the alert rules use, with the
// values the journey implies.
func TestMetricsAfterAJourney(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{PasscodeBackoff: time.Millisecond})
	ctx := context.Background()
	before := scrape(t, s)
	for _, reason := range []string{"passcode_failures", "back_office"} {
		if v, ok := value(before, "strongroom_device_lockouts_total", map[string]string{"reason": reason}); !ok || v != 0 {
			t.Errorf("lockouts{reason=%s} before any lock: %v %v, want a series at 0", reason, v, ok)
		}
	}

	app, err := mobileclient.New(s.PublicURL, s.Client)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Enroll(ctx, s.ActivationCode(t, "metty", "enroll"), "Phone", "ios"); err != nil {
		t.Fatal(err)
	}
	if err := app.SetPasscode(ctx, "123456", ""); err != nil {
		t.Fatal(err)
	}
	tok, err := app.SignIn(ctx, "123456")
	if err != nil {
		t.Fatal(err)
	}
	next, err := app.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Refresh(ctx, next.RefreshToken); err != nil { // the first token's successor is used now
		t.Fatal(err)
	}
	if _, err := app.Refresh(ctx, tok.RefreshToken); mobileclient.Code(err) != "refresh_token_reused" {
		t.Fatalf("reuse: %v", err)
	}
	for i := range 5 {
		time.Sleep(5 * time.Millisecond)
		if _, err := app.SignIn(ctx, "000000"); err == nil {
			t.Fatalf("wrong passcode %d accepted", i)
		}
	}
	other, err := mobileclient.New(s.PublicURL, s.Client)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Enroll(ctx, s.ActivationCode(t, "metty", "enroll"), "Tablet", "android"); err != nil {
		t.Fatal(err)
	}
	token, _ := s.AdminToken(t, nil)
	if r := s.Do(t, http.MethodPost, s.AdminURL+"/admin/v1/devices/"+other.DeviceID+"/lock",
		http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}},
		`{"operator":"Olivia Operator","reason":"lost"}`); r.Status >= 300 {
		t.Fatalf("lock: %d %s", r.Status, r.Body)
	}

	fams := scrape(t, s)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"strongroom_grants_total", map[string]string{"grant_type": "passcode", "outcome": "issued"}, 1},
		{"strongroom_grants_total", map[string]string{"grant_type": "passcode", "outcome": "passcode_incorrect"}, 4},
		{"strongroom_grants_total", map[string]string{"grant_type": "passcode", "outcome": "device_locked"}, 1},
		{"strongroom_grants_total", map[string]string{"grant_type": "refresh_token", "outcome": "issued"}, 2},
		{"strongroom_grants_total", map[string]string{"grant_type": "refresh_token", "outcome": "refresh_token_reused"}, 1},
		// The app's first request had no server nonce yet (RFC 9449 §8).
		{"strongroom_grants_total", map[string]string{"grant_type": "passcode", "outcome": "use_dpop_nonce"}, 1},
		{"strongroom_token_request_duration_seconds", map[string]string{"grant_type": "passcode"}, 7},
		{"strongroom_token_request_duration_seconds", map[string]string{"grant_type": "refresh_token"}, 3},
		{"strongroom_device_lockouts_total", map[string]string{"reason": "passcode_failures"}, 1},
		{"strongroom_device_lockouts_total", map[string]string{"reason": "back_office"}, 1},
		{"strongroom_refresh_reuse_detected_total", nil, 1},
		{"strongroom_passcode_hash_workers", nil, float64(s.App.Hasher.Stats().Workers)},
		{"strongroom_passcode_hash_queue", nil, 0},
	} {
		if got, ok := value(fams, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Gauges measured in the background: present, and sane.
	for _, name := range []string{"strongroom_projection_lag_events", "strongroom_projection_lag_seconds"} {
		if v, ok := value(fams, name, map[string]string{"projection": "devices"}); !ok || v < 0 {
			t.Errorf("%s{projection=devices} = %v (present %v)", name, v, ok)
		}
	}
	if v, ok := value(fams, "strongroom_outbox_backlog_messages", nil); !ok || v < 0 {
		t.Errorf("strongroom_outbox_backlog_messages = %v (present %v)", v, ok)
	}
	if _, ok := value(fams, "go_goroutines", nil); !ok {
		t.Error("the Go runtime's metrics are missing")
	}
}
