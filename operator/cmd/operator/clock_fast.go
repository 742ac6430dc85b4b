//go:build strongroom_fastclock

package main

import (
	"k8s.io/utils/clock"

	"strongroom.dev/api/fastclock"
)

// testClock is the clock of STRONGROOM_FASTCLOCK, shared with authd and the
// test's client (package fastclock); unset, the wall clock. The
// reconcilers scale their requeues by it (controller.requeueAfter).
func testClock(getenv func(string) string) (clock.PassiveClock, error) {
	c, err := fastclock.FromEnv(getenv)
	if c == nil { // no clock, or an error: never a typed nil
		return nil, err
	}
	return c, nil
}
