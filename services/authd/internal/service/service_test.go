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
	cases := map[string]config.Config{
		"memory":     {Dev: true},
		"postgresql": {DatabaseURL: pgtest.Schema(t), MigrateOnStart: true},
	}
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
				if err := json.Unmarshal(out.Bytes(), &st); err != nil || len(st.Projections) != 1 || st.Projections[0].Generation != 2 || st.Projections[0].LagEvents != 0 {
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
