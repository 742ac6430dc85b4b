package projection

import (
	"context"
	"time"
)

// Reader reads the live generation of read models.
type Reader interface {
	// Get returns one document.
	Get(ctx context.Context, projection, key string) (Doc, bool, error)
	// ListByOwner returns an owner's documents ordered by key.
	ListByOwner(ctx context.Context, projection, owner string) ([]Doc, error)
	// All returns every document ordered by key (for checks and tools).
	All(ctx context.Context, projection string) ([]Doc, error)
	// Due returns up to limit documents whose Due is not after t, the
	// earliest first.
	Due(ctx context.Context, projection string, t time.Time, limit int) ([]Doc, error)
}

// Runner runs projections and rebuilds them.
type Runner interface {
	Reader
	// Run delivers events to the projections until ctx is done.
	Run(ctx context.Context) error
	// Rebuild replays the whole log into a fresh generation of the named
	// read model and swaps it in without stopping readers or writers.
	Rebuild(ctx context.Context, projection string) error
	// Status reports every projection's position and lag.
	Status(ctx context.Context) ([]Status, error)
}
