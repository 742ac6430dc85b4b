//go:build strongroom_fastclock

package main

import (
	"time"

	"strongroom.dev/api/fastclock"
)

// testClock is the clock of STRONGROOM_FASTCLOCK, shared with the operator
// and the test's client (package fastclock); unset, the wall clock.
func testClock(getenv func(string) string) (interface{ Now() time.Time }, error) {
	c, err := fastclock.FromEnv(getenv)
	if c == nil { // no clock, or an error: never a typed nil
		return nil, err
	}
	return c, nil
}
