package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/domain/activation"
	"strongroom.dev/services/authd/internal/domain/device"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/passcode"
	"strongroom.dev/services/authd/internal/sealing"
)

// Sealed is a passcode sealed to the server (CONTRACT.md, Sealing), with
// what binds it to its request.
type Sealed struct {
	DeviceID string
	// KeyThumbprint and JTI come from the request's verified DPoP proof.
	KeyThumbprint, JTI string
	Sealed, KID        string
}

// open opens a sealed passcode and checks the passcode policy. A seal that
// does not open never counts as a wrong passcode.
func (s *Service) open(in Sealed) ([]byte, error) {
	plain, err := s.Sealing.Open(in.KID, in.Sealed, []byte(sealing.InfoPasscode), sealing.PasscodeAAD(in.DeviceID, in.JTI), s.Now())
	switch {
	case errors.Is(err, sealing.ErrUnknownKID):
		return nil, errSealingKID()
	case err != nil:
		return nil, errSealInvalid()
	}
	return plain, nil
}

// device reads a device and checks that the request's key is its key; an
// unknown, revoked or foreign-key device answers device_unknown alike.
func (s *Service) deviceFor(ctx context.Context, deviceID, jkt string) (*device.State, error) {
	d, err := s.readDevice(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	if d == nil || d.Status == device.Revoked || d.KeyThumbprint != jkt {
		return nil, errDeviceUnknown()
	}
	return d, nil
}

// SetPasscode sets a device's passcode: once right after enrollment, or
// with a fresh reset code of the same user (Forgot passcode). A reset sets
// the failure count back to zero and lifts a lock by failures, never a lock
// the back office set. The verifier is stored with the event, atomically.
func (s *Service) SetPasscode(ctx context.Context, in Sealed, resetCode string) error {
	d, err := s.deviceFor(ctx, in.DeviceID, in.KeyThumbprint)
	if err != nil {
		return err
	}
	if d.PasscodeOverdue(s.Now(), s.Policy) {
		// Enrolled but never finished: the device is revoked, not helped.
		if err := s.RevokeDevice(ctx, d.ID, "no_passcode", ""); err != nil {
			return err
		}
		return errDeviceUnknown()
	}
	plain, err := s.open(in)
	if err != nil {
		return err
	}
	defer clear(plain)
	if err := s.Passcode.Validate(plain); err != nil {
		return errInvalid("the passcode does not meet the policy")
	}
	if d.HasPasscode && resetCode == "" {
		return errActivation()
	}
	if resetCode != "" {
		code, err := s.readActivation(ctx, resetCode)
		if err != nil {
			return err
		}
		if !code.Usable(s.Now(), activation.Reset) || code.UserID != d.UserID {
			return errActivation()
		}
	}
	slot, err := s.Hasher.Acquire(ctx)
	if errors.Is(err, passcode.ErrBusy) {
		return errBusy()
	}
	if err != nil {
		return err
	}
	v, err := traced(ctx, "passcode.hash", func() (passcode.Verifier, error) { return slot.New(plain) })
	slot.Release()
	if err != nil {
		return fmt.Errorf("hash passcode: %w", err)
	}
	verifier, err := json.Marshal(storedVerifier{PHC: v.PHC, PepperID: v.PepperID})
	if err != nil {
		return err
	}
	return retry(func() error {
		d, err := s.deviceFor(ctx, in.DeviceID, in.KeyThumbprint)
		if err != nil {
			return err
		}
		var appends []eventstore.Append
		set := events.DevicePasscodeSetV1{PepperID: v.PepperID}
		if resetCode != "" {
			code, err := s.readActivation(ctx, resetCode)
			if err != nil {
				return err
			}
			if !code.Usable(s.Now(), activation.Reset) || code.UserID != d.UserID {
				return errActivation()
			}
			set.ActivationID = code.ID
			appends = append(appends, eventstore.Append{StreamID: code.ID, StreamType: events.StreamActivation, ExpectedVersion: code.Version,
				Events: []eventstore.Pending{{Type: events.ActivationConsumed, Payload: events.ActivationConsumedV1{DeviceID: d.ID, Purpose: activation.Reset}}}})
		} else if d.HasPasscode {
			return errActivation()
		}
		devEvents := []eventstore.Pending{{Type: events.DevicePasscodeSet, Payload: set}}
		if d.Status == device.Locked && d.LockReason == device.LockFailures && resetCode != "" {
			devEvents = append(devEvents, eventstore.Pending{Type: events.DeviceUnlocked, Payload: events.DeviceUnlockedV1{ActivationID: set.ActivationID}})
		}
		appends = append(appends, eventstore.Append{StreamID: d.ID, StreamType: events.StreamDevice, ExpectedVersion: d.Version, Events: devEvents})
		_, err = s.Secrets.AppendWithSecret(ctx, d.ID, verifier, appends...)
		return err
	})
}

// storedVerifier is the credential record of a device: the Argon2id PHC
// string and the pepper it was made with. (passcode.Verifier redacts
// itself in every output, JSON included, so it is copied here.)
type storedVerifier struct {
	PHC      string `json:"phc"`
	PepperID string `json:"pepper_id"`
}
