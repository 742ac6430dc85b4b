package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"

	"strongroom.dev/services/authd/internal/config"
	"strongroom.dev/services/authd/internal/service"
	"strongroom.dev/services/authd/internal/telemetry"
)

func migrateCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	m, rest, code := loadMaintenance("authd migrate", args, getenv, stdout, stderr)
	if code >= 0 {
		return code
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "authd migrate: unexpected argument %q\n", rest[0])
		return exitUsage
	}
	log := telemetry.NewLogger(stdout, m.LogLevel)
	if err := service.Migrate(ctx, m.DatabaseURL, log); err != nil {
		log.Error("migrate failed", "error", err)
		return exitFailure
	}
	return exitOK
}

// projectionName keeps arbitrary bytes out of logs and error messages; the
// service decides whether the name exists.
var projectionName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

func projectionsCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "authd projections: want rebuild NAME or status\n")
		return exitUsage
	}
	switch args[0] {
	case "rebuild":
		m, rest, code := loadMaintenance("authd projections rebuild", args[1:], getenv, stdout, stderr)
		if code >= 0 {
			return code
		}
		if len(rest) != 1 || !projectionName.MatchString(rest[0]) {
			fmt.Fprint(stderr, "authd projections rebuild: want exactly one projection NAME (lowercase letters, digits, . _ -)\n")
			return exitUsage
		}
		log := telemetry.NewLogger(stdout, m.LogLevel)
		if err := service.RebuildProjection(ctx, m.DatabaseURL, rest[0], log); err != nil {
			log.Error("projection rebuild failed", "projection", rest[0], "error", err)
			return exitFailure
		}
		return exitOK
	case "status":
		m, rest, code := loadMaintenance("authd projections status", args[1:], getenv, stdout, stderr)
		if code >= 0 {
			return code
		}
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "authd projections status: unexpected argument %q\n", rest[0])
			return exitUsage
		}
		if err := service.ProjectionStatus(ctx, m.DatabaseURL, stdout); err != nil {
			telemetry.NewLogger(stdout, m.LogLevel).Error("projection status failed", "error", err)
			return exitFailure
		}
		return exitOK
	default:
		fmt.Fprintf(stderr, "authd projections: unknown subcommand %q: want rebuild NAME or status\n", args[0])
		return exitUsage
	}
}

// loadMaintenance loads the database settings; code is -1 to go on, or the
// exit status to return at once.
func loadMaintenance(name string, args []string, getenv func(string) string, stdout, stderr io.Writer) (config.Maintenance, []string, int) {
	m, rest, err := config.LoadMaintenance(name, args, getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "Usage: %s [--database-url URL] [--log-level LEVEL]\n(environment: DATABASE_URL, STRONGROOM_LOG_LEVEL)\n", name)
		return m, nil, exitOK
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return m, nil, exitUsage
	}
	return m, rest, -1
}
