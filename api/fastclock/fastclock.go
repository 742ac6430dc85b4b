// Package fastclock is a clock that runs faster than the wall clock, the
// same for every process given the same setting. It exists for end-to-end
// tests: a certificate that rotates monthly in production, or a signing key
// that rotates daily, can then rotate within minutes while the protocol's
// own windows (a DPoP proof's 60 s, a challenge's minute, a token's five
// minutes) keep their production values relative to those rotations.
//
// Binaries honour the setting only when built with the build tag
// "strongroom_fastclock" (the e2e tests build them so); a production build
// has no way to run its clock at another speed.
package fastclock

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Env is the environment variable the test builds read: "<origin>,<rate>",
// the origin in Unix nanoseconds (wall clock), the rate a number ≥ 1.
const Env = "STRONGROOM_FASTCLOCK"

// MaxRate bounds the rate: beyond it a nanosecond of wall time is more
// than a millisecond of clock time and time.Duration arithmetic loses
// meaning for the windows being tested.
const MaxRate = 1e6

// Clock reads origin + (wall − origin) × rate: at the origin it agrees
// with the wall clock, and every process with the same origin and rate
// reads the same time at the same instant.
type Clock struct {
	origin time.Time
	rate   float64
	wall   func() time.Time
}

// New returns a clock that runs rate times faster than the wall clock
// from origin on.
func New(origin time.Time, rate float64) (*Clock, error) {
	if math.IsNaN(rate) || rate < 1 || rate > MaxRate {
		return nil, fmt.Errorf("fastclock: rate %v is not between 1 and %v", rate, MaxRate)
	}
	// Round keeps no monotonic reading: the origin is a wall-clock instant
	// shared with other processes.
	return &Clock{origin: origin.Round(0), rate: rate, wall: time.Now}, nil
}

// Parse reads the Env form.
func Parse(s string) (*Clock, error) {
	o, r, ok := strings.Cut(s, ",")
	if !ok {
		return nil, errors.New("fastclock: want <origin unix nanoseconds>,<rate>")
	}
	ns, err := strconv.ParseInt(o, 10, 64)
	if err != nil || ns <= 0 {
		return nil, errors.New("fastclock: the origin is not a positive Unix time in nanoseconds")
	}
	rate, err := strconv.ParseFloat(r, 64)
	if err != nil {
		return nil, errors.New("fastclock: the rate is not a number")
	}
	return New(time.Unix(0, ns), rate)
}

// String is the Env form of c.
func (c *Clock) String() string {
	return strconv.FormatInt(c.origin.UnixNano(), 10) + "," + strconv.FormatFloat(c.rate, 'g', -1, 64)
}

// Rate is how many seconds of c pass in one second of the wall clock.
func (c *Clock) Rate() float64 { return c.rate }

// Now is c's current time.
func (c *Clock) Now() time.Time {
	wall := c.wall().Round(0)
	return c.origin.Add(time.Duration(float64(wall.Sub(c.origin)) * c.rate))
}

// Since is c.Now().Sub(t) (k8s.io/utils/clock.PassiveClock).
func (c *Clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// Wall is how long d of c's time takes on the wall clock: what a timer
// or a controller's requeue must wait.
func (c *Clock) Wall(d time.Duration) time.Duration {
	return time.Duration(float64(d) / c.rate)
}

// FromEnv is the clock Env sets through getenv; nil when it is unset.
func FromEnv(getenv func(string) string) (*Clock, error) {
	s := getenv(Env)
	if s == "" {
		return nil, nil
	}
	return Parse(s)
}
