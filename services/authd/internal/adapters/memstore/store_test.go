package memstore

import (
	"io"
	"log/slog"
	"testing"

	"strongroom.dev/services/authd/internal/eventstore/storetest"
	"strongroom.dev/services/authd/internal/projection"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, inline, async []projection.Projection) storetest.Harness {
		s := New(WithInline(inline...))
		t.Cleanup(func() { _ = s.Close() })
		p, err := NewProjector(s, slog.New(slog.NewTextHandler(io.Discard, nil)), async)
		if err != nil {
			t.Fatal(err)
		}
		return storetest.Harness{Store: s, Runner: p}
	})
}
