package device

import (
	"errors"
	"testing"
	"time"
)

func TestCheckAttempt(t *testing.T) {
	p := Policy{MaxFailures: 5, ThrottleAfter: 3, BaseWait: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	active := func(failures int) *State {
		return &State{Status: Active, HasPasscode: true, Failures: failures, LastAttemptAt: t0}
	}
	cases := []struct {
		name  string
		state *State
		now   time.Time
		want  error
		retry time.Duration
	}{
		{"no device", nil, t0, ErrUnknown, 0},
		{"revoked", &State{Status: Revoked}, t0, ErrUnknown, 0},
		{"locked by the back office", &State{Status: Locked, LockReason: LockBackOffice, HasPasscode: true}, t0, ErrLocked, 0},
		{"five unresolved attempts", active(5), t0.Add(time.Hour), ErrLocked, 0},
		{"no passcode yet", &State{Status: PendingPasscode}, t0, ErrNoPasscode, 0},
		{"two failures: no wait", active(2), t0, nil, 0},
		{"three failures: inside the wait", active(3), t0.Add(20 * time.Second), &ThrottledError{}, 40 * time.Second},
		{"three failures: after the wait", active(3), t0.Add(time.Minute), nil, 0},
		{"four failures: the wait doubles", active(4), t0.Add(90 * time.Second), &ThrottledError{}, 30 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.state.CheckAttempt(c.now, p)
			var th *ThrottledError
			switch want := c.want.(type) {
			case nil:
				if err != nil {
					t.Fatalf("got %v", err)
				}
			case *ThrottledError:
				if !errors.As(err, &th) || th.RetryAfter != c.retry {
					t.Fatalf("got %v, want throttled for %s", err, c.retry)
				}
			default:
				if !errors.Is(err, want) {
					t.Fatalf("got %v, want %v", err, want)
				}
			}
		})
	}
}

func TestAttemptsRemainingAndDeadline(t *testing.T) {
	p := DefaultPolicy
	if r := (&State{Failures: 3}).AttemptsRemaining(p); r != 2 {
		t.Fatalf("remaining = %d", r)
	}
	if r := (&State{Failures: 9}).AttemptsRemaining(p); r != 0 {
		t.Fatalf("remaining = %d", r)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &State{Status: PendingPasscode, EnrolledAt: t0}
	if s.PasscodeOverdue(t0.Add(10*time.Minute), p) || !s.PasscodeOverdue(t0.Add(10*time.Minute+time.Second), p) {
		t.Fatal("the 10-minute deadline is wrong")
	}
}
