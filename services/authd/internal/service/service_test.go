package service

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/config"
	"strongroom.dev/services/authd/internal/eventstore/storetest"
	"strongroom.dev/services/authd/internal/pgtest"
	"strongroom.dev/services/authd/internal/readmodel"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestOpenRefusesWhatItCannotServe(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, config.Config{}, quiet); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("no database outside dev mode: %v", err)
	}
	_, err := Open(ctx, config.Config{DatabaseURL: "postgres://u:hunter2@[::1:bad/x"}, quiet)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad DSN: %v", err)
	}
	// An unmigrated database is refused with the command that fixes it.
	_, err = Open(ctx, config.Config{DatabaseURL: pgtest.Schema(t)}, quiet)
	if err == nil || !strings.Contains(err.Error(), "authd migrate") {
		t.Fatalf("unmigrated database: %v", err)
	}
}

// TestAppEndToEnd runs the wired app on both stores: an append reaches the
// read model through the outbox, readiness passes, and the tools work.
func TestAppEndToEnd(t *testing.T) {
	dev := config.Config{Dev: true, Issuer: "https://127.0.0.1:8443", AdminURL: "https://127.0.0.1:8444",
		DevAdminSecret: "0123456789abcdef0123456789abcdef", AccessTokenLifetime: 5 * time.Minute}
	onPG := dev
	onPG.DatabaseURL = pgtest.Schema(t)
	cases := map[string]config.Config{"memory": dev, "postgresql": onPG}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := Open(ctx, cfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			evs, err := a.Store.Append(ctx, storetest.Enroll("dev-1", "alice"))
			if err != nil {
				t.Fatal(err)
			}
			storetest.WaitCaughtUp(t, a.ReadModels, storetest.Last(evs))
			docs, err := a.ReadModels.ListByOwner(ctx, readmodel.DevicesName, "alice")
			if err != nil || len(docs) != 1 {
				t.Fatalf("read model: %d docs, %v", len(docs), err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for name, check := range a.ReadinessChecks() {
				for {
					err := check(ctx)
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("readiness %s: %v", name, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			if cfg.DatabaseURL != "" {
				if err := RebuildProjection(ctx, cfg.DatabaseURL, readmodel.DevicesName, quiet); err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				if err := ProjectionStatus(ctx, cfg.DatabaseURL, &out); err != nil {
					t.Fatal(err)
				}
				var st struct {
					Projections []struct {
						Name       string `json:"name"`
						Generation int    `json:"generation"`
						LagEvents  int64  `json:"lag_events"`
					} `json:"projections"`
				}
				var devices *struct {
					Name       string `json:"name"`
					Generation int    `json:"generation"`
					LagEvents  int64  `json:"lag_events"`
				}
				_ = json.Unmarshal(out.Bytes(), &st)
				for i := range st.Projections {
					if st.Projections[i].Name == readmodel.DevicesName {
						devices = &st.Projections[i]
					}
				}
				if devices == nil || len(st.Projections) != 2 || devices.Generation != 2 || devices.LagEvents != 0 {
					t.Fatalf("status = %s (%v)", out.String(), err)
				}
				if err := Migrate(ctx, cfg.DatabaseURL, quiet); err != nil {
					t.Fatalf("migrate again: %v", err)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
