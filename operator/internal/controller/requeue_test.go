package controller

import (
	"testing"
	"time"

	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"strongroom.dev/api/fastclock"
)

// A requeue waits on the wall clock: with a clock 60 times faster (the
// end-to-end build's), an hour of it is a minute; never under a second.
func TestRequeueAfterScalesToTheWallClock(t *testing.T) {
	fast, err := fastclock.New(time.Now(), 60)
	if err != nil {
		t.Fatal(err)
	}
	fake := clocktesting.NewFakePassiveClock(time.Now())
	for _, c := range []struct {
		name string
		clk  clock.PassiveClock
		d    time.Duration
		want time.Duration
	}{
		{"real clock", fake, time.Hour, time.Hour},
		{"fast clock", fast, time.Hour, time.Minute},
		{"fast clock, due soon", fast, 30 * time.Second, time.Second},
		{"overdue", fake, -time.Minute, time.Second},
	} {
		if got := requeueAfter(c.clk, c.d); got != c.want {
			t.Errorf("%s: requeueAfter(%v) = %v, want %v", c.name, c.d, got, c.want)
		}
	}
}
