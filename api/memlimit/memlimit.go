// Package memlimit sets the Go runtime's soft memory limit from the
// container's memory limit, with headroom.
//
// GOMEMLIMIT equal to the container's limit leaves nothing for what the
// runtime does not manage but the cgroup charges (socket buffers, page
// cache, memory mapped outside the runtime): the kernel kills the process
// before the garbage collector has worked hard. The Kubernetes downward
// API gives the limit only as it is, so the charts pass it in Env and the
// binaries keep Ratio of it. GOMEMLIMIT, when set, wins: it is the
// runtime's own setting and the runtime has already applied it.
package memlimit

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
)

// Env holds the container's memory limit in bytes (the downward API's
// resourceFieldRef limits.memory).
const Env = "STRONGROOM_MEMORY_LIMIT"

// Ratio is the part of the container's limit the runtime aims to stay
// under.
const Ratio = 0.9

// minLimit refuses limits no Go service runs in: a unit mistake (the
// downward API with a divisor of 1Mi gives "512").
const minLimit = 16 << 20

// Apply sets the runtime's soft memory limit to Ratio of the limit in
// Env, unless GOMEMLIMIT is set or Env is not. It returns the limit it
// set (0 for none) and refuses a value that is not a whole number of
// bytes of at least 16 MiB.
func Apply(getenv func(string) string) (int64, error) {
	limit, err := Limit(getenv)
	if err != nil || limit == 0 {
		return 0, err
	}
	debug.SetMemoryLimit(limit)
	return limit, nil
}

// Limit is the soft memory limit Apply would set.
func Limit(getenv func(string) string) (int64, error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	raw := strings.TrimSpace(getenv(Env))
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < minLimit {
		return 0, fmt.Errorf("%s=%q: want the container's memory limit in bytes (at least %d)", Env, truncate(raw, 32), minLimit)
	}
	return int64(float64(n) * Ratio), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
