package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/domain/device"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/passcode"
)

// SignIn is a successful passcode sign-in.
type SignIn struct {
	UserID, DeviceID string
}

// PasscodeSignIn checks a sealed passcode (CONTRACT.md, Passcode
// attempts). In order:
//  1. the device and its key (device_unknown), the seal (seal_invalid,
//     not counted), lock and wait (device_locked, passcode_throttled —
//     refused without being evaluated);
//  2. a hashing slot is reserved, so a saturated server refuses before
//     anything is counted;
//  3. the attempt is counted in a short append (device.passcode_attempted,
//     with the version just read: of N parallel guesses only those the
//     policy allows get counted, the rest are re-decided and refused);
//  4. the hash runs outside any transaction (a crash here leaves a counted
//     attempt: a failure);
//  5. the outcome is appended: device.passcode_verified, or
//     device.passcode_failed — and at the last allowed failure
//     device.locked with every session of the device revoked, atomically.
func (s *Service) PasscodeSignIn(ctx context.Context, in Sealed) (*SignIn, error) {
	d, err := s.deviceFor(ctx, in.DeviceID, in.KeyThumbprint)
	if err != nil {
		return nil, err
	}
	plain, err := s.open(in)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	if err := s.decide(d); err != nil {
		return nil, err
	}
	slot, err := s.Hasher.Acquire(ctx)
	if errors.Is(err, passcode.ErrBusy) {
		// Under a flood, most waiting guesses would be throttled by now:
		// say so rather than "busy" when it is true.
		if d, rerr := s.deviceFor(ctx, in.DeviceID, in.KeyThumbprint); rerr == nil {
			if derr := s.decide(d); derr != nil {
				return nil, derr
			}
		}
		return nil, errBusy()
	}
	if err != nil {
		return nil, err
	}
	defer slot.Release()

	// Count the attempt first.
	var attempt int
	err = retry(func() error {
		d, err = s.deviceFor(ctx, in.DeviceID, in.KeyThumbprint)
		if err != nil {
			return err
		}
		if err := s.decide(d); err != nil {
			return err
		}
		attempt = d.Failures + 1
		_, err = s.Events.Append(ctx, eventstore.Append{StreamID: d.ID, StreamType: events.StreamDevice, ExpectedVersion: d.Version,
			Events: []eventstore.Pending{{Type: events.DevicePasscodeAttempted, Payload: events.DevicePasscodeAttemptedV1{Attempt: attempt}}}})
		return err
	})
	if err != nil {
		return nil, err
	}

	ok, err := s.verify(ctx, slot, d.ID, plain)
	if err != nil {
		return nil, err // the counted attempt stays a failure
	}
	if ok {
		err := retry(func() error {
			d, err := s.readDevice(ctx, in.DeviceID)
			if err != nil {
				return err
			}
			_, err = s.Events.Append(ctx, eventstore.Append{StreamID: d.ID, StreamType: events.StreamDevice, ExpectedVersion: d.Version,
				Events: []eventstore.Pending{{Type: events.DevicePasscodeVerified, Payload: events.DevicePasscodeVerifiedV1{Attempt: attempt}}}})
			return err
		})
		if err != nil {
			return nil, err
		}
		return &SignIn{UserID: d.UserID, DeviceID: d.ID}, nil
	}
	return nil, s.recordFailure(ctx, in.DeviceID)
}

// decide refuses an attempt that may not be evaluated now.
func (s *Service) decide(d *device.State) error {
	err := d.CheckAttempt(s.Now(), s.Policy)
	var th *device.ThrottledError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &th):
		e := refuse(429, "invalid_grant", "passcode_throttled", "wait before the next attempt")
		e.RetryAfter = th.RetryAfter
		return e
	case errors.Is(err, device.ErrLocked):
		return errDeviceLocked()
	case errors.Is(err, device.ErrNoPasscode):
		return refuse(400, "invalid_grant", "passcode_not_set", "the device has no passcode yet")
	default:
		return errDeviceUnknown()
	}
}

func (s *Service) verify(ctx context.Context, slot *passcode.Slot, deviceID string, plain []byte) (bool, error) {
	raw, ok, err := s.Secrets.Secret(ctx, deviceID)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("device %s has a passcode event but no verifier", deviceID)
	}
	var v storedVerifier
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, fmt.Errorf("device %s: stored verifier unreadable", deviceID)
	}
	if s.Passcode.Validate(plain) != nil {
		return false, nil // a malformed passcode is a wrong one, and counts
	}
	return traced(ctx, "passcode.hash", func() (bool, error) {
		return slot.Verify(passcode.Verifier{PHC: v.PHC, PepperID: v.PepperID}, plain)
	})
}

// recordFailure appends the failed outcome; at the last allowed failure it
// locks the device and revokes its sessions in the same append.
func (s *Service) recordFailure(ctx context.Context, deviceID string) error {
	var remaining int
	var locked bool
	var userID string
	err := retry(func() error {
		d, err := s.readDevice(ctx, deviceID)
		if err != nil {
			return err
		}
		userID = d.UserID
		remaining = d.AttemptsRemaining(s.Policy)
		devEvents := []eventstore.Pending{{Type: events.DevicePasscodeFailed, Payload: events.DevicePasscodeFailedV1{
			ConsecutiveFailures: d.Failures, AttemptsRemaining: remaining}}}
		var revs []eventstore.Append
		locked = remaining == 0 && d.Status != device.Locked
		if locked {
			devEvents = append(devEvents, eventstore.Pending{Type: events.DeviceLocked, Payload: events.DeviceLockedV1{Reason: device.LockFailures}})
			if revs, err = s.sessionRevocations(ctx, d.UserID, d.ID, "device_locked", ""); err != nil {
				return err
			}
		}
		appends := append([]eventstore.Append{{StreamID: d.ID, StreamType: events.StreamDevice, ExpectedVersion: d.Version, Events: devEvents}}, revs...)
		_, err = s.Events.Append(ctx, appends...)
		return err
	})
	if err != nil {
		return err
	}
	if locked {
		s.Metrics.Lockout(ctx, device.LockFailures)
		if err := s.revokeLeftovers(ctx, userID, deviceID, "device_locked", ""); err != nil {
			return err
		}
	}
	if remaining == 0 {
		e := errDeviceLocked()
		e.AttemptsRemaining = &remaining
		return e
	}
	e := refuse(400, "invalid_grant", "passcode_incorrect", "the passcode is not correct")
	e.AttemptsRemaining = &remaining
	return e
}
