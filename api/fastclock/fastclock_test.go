package fastclock

import (
	"strings"
	"testing"
	"time"
)

func TestClockRunsFasterFromItsOrigin(t *testing.T) {
	origin := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := New(origin, 60)
	if err != nil {
		t.Fatal(err)
	}
	wall := origin
	c.wall = func() time.Time { return wall }
	if got := c.Now(); !got.Equal(origin) {
		t.Fatalf("at the origin: %v", got)
	}
	wall = origin.Add(2 * time.Second)
	if got, want := c.Now(), origin.Add(2*time.Minute); !got.Equal(want) {
		t.Fatalf("2 s after the origin: %v, want %v", got, want)
	}
	if got := c.Since(origin); got != 2*time.Minute {
		t.Fatalf("Since: %v", got)
	}
	if got := c.Wall(time.Hour); got != time.Minute {
		t.Fatalf("an hour of the clock on the wall: %v", got)
	}
}

// Two processes parsing the same setting read the same time.
func TestParseRoundTrips(t *testing.T) {
	c, err := New(time.Unix(0, 1_800_000_000_123_456_789), 12.5)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(c.String())
	if err != nil {
		t.Fatal(err)
	}
	if d.origin != c.origin || d.rate != c.rate {
		t.Fatalf("%v became %v", c, d)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, s := range []string{
		"", ",", "1800000000000000000", "1800000000000000000,", ",10",
		"x,10", "-5,10", "0,10", "1800000000000000000,x", "1800000000000000000,0.5",
		"1800000000000000000,NaN", "1800000000000000000,+Inf", "1800000000000000000,1e7",
		"1800000000000000000,10,3", strings.Repeat("9", 40) + ",10",
	} {
		if c, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", s, c)
		}
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if c, err := FromEnv(getenv); c != nil || err != nil {
		t.Fatalf("unset: %v, %v", c, err)
	}
	env[Env] = "1800000000000000000,20"
	if c, err := FromEnv(getenv); err != nil || c.Rate() != 20 {
		t.Fatalf("set: %v, %v", c, err)
	}
	env[Env] = "soon,20"
	if c, err := FromEnv(getenv); c != nil || err == nil {
		t.Fatalf("bad: %v, %v", c, err)
	}
}
