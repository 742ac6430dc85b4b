// Package observability_test checks authd's traces and metrics end to end:
// a sign-in's spans, from HTTP through the event log and the outbox to the
// projections, and the Prometheus metrics after a journey. It is a package
// of its own because its tests install the process's global tracer
// provider, which the other packages' tests must not share.
package observability_test

import (
	"testing"

	"strongroom.dev/services/authd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
