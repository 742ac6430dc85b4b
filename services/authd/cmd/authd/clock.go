//go:build !strongroom_fastclock

package main

import "time"

// testClock is nil: only builds for end-to-end tests (build tag
// strongroom_fastclock) can run authd's clock faster than the wall clock.
func testClock(func(string) string) (interface{ Now() time.Time }, error) { return nil, nil }
