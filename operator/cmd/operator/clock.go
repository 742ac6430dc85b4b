//go:build !strongroom_fastclock

package main

import "k8s.io/utils/clock"

// testClock is nil: only builds for end-to-end tests (build tag
// strongroom_fastclock) can run the operator's clock faster than the wall
// clock.
func testClock(func(string) string) (clock.PassiveClock, error) { return nil, nil }
