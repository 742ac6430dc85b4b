// Package device is the device aggregate: the state a device's event
// stream folds into, and the decisions taken on it (may this passcode
// attempt be evaluated? is the device locked?). It is pure: no I/O, the
// clock comes in as an argument.
package device

import (
	"errors"
	"fmt"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
)

// Status of a device.
type Status string

// Device statuses.
const (
	PendingPasscode Status = "pending_passcode"
	Active          Status = "active"
	Locked          Status = "locked"
	Revoked         Status = "revoked"
)

// Lock reasons.
const (
	LockFailures   = "passcode_failures"
	LockBackOffice = "back_office"
)

// State is a device folded from its stream.
type State struct {
	ID            string
	UserID        string
	KeyThumbprint string
	Version       int64
	EnrolledAt    time.Time
	HasPasscode   bool
	PepperID      string
	Status        Status
	LockReason    string
	// Failures counts passcode attempts since the last verified one or
	// reset, including attempts still being evaluated: an attempt counts
	// before its hash runs (CONTRACT.md, Passcode attempts).
	Failures      int
	LastAttemptAt time.Time
	HasBiometric  bool
	// BiometricJKT and BiometricJWK are the biometric key (RFC 7638
	// thumbprint and public JWK), set while HasBiometric.
	BiometricJKT string
	BiometricJWK map[string]any
}

// Fold builds a device's state from its events (in version order). A
// stream that is not a device yields an error.
func Fold(reg *events.Registry, evs []eventstore.Event) (*State, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	s := &State{}
	for _, ev := range evs {
		if ev.StreamType != events.StreamDevice {
			return nil, fmt.Errorf("stream %q is a %s stream", ev.StreamID, ev.StreamType)
		}
		p, err := reg.Decode(ev.Type, ev.SchemaVersion, ev.Data)
		if err != nil {
			return nil, fmt.Errorf("device %s v%d: %w", ev.StreamID, ev.Version, err)
		}
		s.apply(ev, p)
	}
	return s, nil
}

func (s *State) apply(ev eventstore.Event, payload any) {
	s.Version = ev.Version
	switch p := payload.(type) {
	case *events.DeviceEnrolledV1:
		*s = State{ID: ev.StreamID, UserID: p.UserID, KeyThumbprint: p.KeyThumbprint, Version: ev.Version,
			EnrolledAt: ev.OccurredAt, Status: PendingPasscode}
	case *events.DevicePasscodeSetV1:
		s.HasPasscode, s.PepperID, s.Failures = true, p.PepperID, 0
		if s.Status == PendingPasscode {
			s.Status = Active
		}
	case *events.DevicePasscodeAttemptedV1:
		s.Failures++
		s.LastAttemptAt = ev.OccurredAt
	case *events.DevicePasscodeVerifiedV1:
		s.Failures = 0
	case *events.DeviceLockedV1:
		if s.Status != Revoked {
			s.Status, s.LockReason = Locked, p.Reason
		}
	case *events.DeviceUnlockedV1:
		if s.Status == Locked {
			s.Status, s.LockReason, s.Failures = Active, "", 0
		}
	case *events.DeviceBiometricKeyEnrolledV1:
		s.HasBiometric, s.BiometricJKT, s.BiometricJWK = true, p.KeyThumbprint, p.PublicKey
	case *events.DeviceBiometricKeyRemovedV1:
		s.HasBiometric, s.BiometricJKT, s.BiometricJWK = false, "", nil
	case *events.DeviceRevokedV1:
		s.Status, s.HasBiometric, s.BiometricJKT, s.BiometricJWK = Revoked, false, "", nil
	}
}

// Policy is the passcode attempt policy (CONTRACT.md, Passcode attempts).
type Policy struct {
	// MaxFailures consecutive failures lock the device (5).
	MaxFailures int
	// ThrottleAfter failures, each attempt waits (3).
	ThrottleAfter int
	// BaseWait is the wait after ThrottleAfter failures; it doubles with
	// each further failure (30 s, 60 s, ...). Tests use milliseconds.
	BaseWait time.Duration
	// PasscodeDeadline is how long after enrollment a device may set its
	// first passcode before it is revoked (10 minutes).
	PasscodeDeadline time.Duration
}

// DefaultPolicy is the contract's policy.
var DefaultPolicy = Policy{MaxFailures: 5, ThrottleAfter: 3, BaseWait: 30 * time.Second, PasscodeDeadline: 10 * time.Minute}

// Wait returns how long after the last attempt the next may be evaluated,
// given the failures so far.
func (p Policy) Wait(failures int) time.Duration {
	if failures < p.ThrottleAfter {
		return 0
	}
	return p.BaseWait << min(failures-p.ThrottleAfter, 10)
}

// Decision errors.
var (
	// ErrUnknown covers unknown, revoked and (to the caller) key-mismatched
	// devices alike, so device ids cannot be probed.
	ErrUnknown    = errors.New("device unknown")
	ErrLocked     = errors.New("device locked")
	ErrNoPasscode = errors.New("device has no passcode")
	// ErrNoBiometric: no biometric key is enrolled (or it was removed).
	ErrNoBiometric = errors.New("device has no biometric key")
)

// ThrottledError says when the next attempt may be evaluated.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("passcode attempts throttled for %s", e.RetryAfter)
}

// CheckAttempt decides whether a passcode attempt may be counted and
// evaluated now. It refuses without counting: locked, revoked, no
// passcode, or inside the wait.
func (s *State) CheckAttempt(now time.Time, p Policy) error {
	switch {
	case s == nil || s.Status == Revoked:
		return ErrUnknown
	case s.Status == Locked || s.Failures >= p.MaxFailures:
		return ErrLocked
	case !s.HasPasscode:
		return ErrNoPasscode
	}
	if wait := p.Wait(s.Failures); wait > 0 {
		if next := s.LastAttemptAt.Add(wait); now.Before(next) {
			return &ThrottledError{RetryAfter: next.Sub(now)}
		}
	}
	return nil
}

// CheckBiometric decides whether the device may sign in with its
// biometric key now: not revoked, not locked (nor at the failure limit, as
// a passcode attempt would be), with a biometric key.
func (s *State) CheckBiometric(p Policy) error {
	switch {
	case s == nil || s.Status == Revoked:
		return ErrUnknown
	case s.Status == Locked || s.Failures >= p.MaxFailures:
		return ErrLocked
	case !s.HasBiometric:
		return ErrNoBiometric
	}
	return nil
}

// AttemptsRemaining is what a wrong passcode answer reports.
func (s *State) AttemptsRemaining(p Policy) int { return max(0, p.MaxFailures-s.Failures) }

// PasscodeOverdue reports whether a device enrolled without setting a
// passcode in time (it is then revoked, not given one).
func (s *State) PasscodeOverdue(now time.Time, p Policy) bool {
	return s.Status == PendingPasscode && now.Sub(s.EnrolledAt) > p.PasscodeDeadline
}
