// Package readmodel holds the read models authd projects from the event
// log. They are for display and listing ("the user's devices"); security
// decisions read an aggregate's own stream instead (CONTRACT.md, Token
// endpoint), never these eventually consistent views.
package readmodel

import (
	"fmt"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

// DevicesName is the name of the devices read model.
const DevicesName = "devices"

// Device statuses.
const (
	DevicePendingPasscode = "pending_passcode"
	DeviceActive          = "active"
	DeviceLocked          = "locked"
	DeviceRevoked         = "revoked"
)

// Device is one row of the devices read model.
type Device struct {
	DeviceID        string    `json:"device_id"`
	UserID          string    `json:"user_id"`
	Name            string    `json:"name"`
	Platform        string    `json:"platform"`
	Status          string    `json:"status"`
	HasBiometricKey bool      `json:"has_biometric_key"`
	LockReason      string    `json:"lock_reason,omitempty"`
	EnrolledAt      time.Time `json:"enrolled_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	Version         int64     `json:"version"`
}

// Devices projects device streams into one document per device, owned by
// its user.
func Devices(reg *events.Registry) projection.Projection {
	return projection.Typed[Device]{
		ProjectionName: DevicesName,
		KeyOf: func(ev eventstore.Event) (string, bool) {
			return ev.StreamID, ev.StreamType == events.StreamDevice
		},
		Streams: []string{events.StreamDevice},
		Fold: func(cur *Device, ev eventstore.Event) (*Device, string, error) {
			return foldDevice(reg, cur, ev)
		},
	}
}

func foldDevice(reg *events.Registry, cur *Device, ev eventstore.Event) (*Device, string, error) {
	if cur == nil && ev.Type != events.DeviceEnrolled {
		return nil, "", fmt.Errorf("device %s: %s before %s", ev.StreamID, ev.Type, events.DeviceEnrolled)
	}
	if cur != nil && ev.Version <= cur.Version {
		return cur, cur.UserID, nil // an event already folded in
	}
	payload, err := reg.Decode(ev.Type, ev.SchemaVersion, ev.Data)
	if err != nil {
		return nil, "", err
	}
	var d Device
	if cur != nil {
		d = *cur
	}
	switch p := payload.(type) {
	case *events.DeviceEnrolledV1:
		d = Device{DeviceID: ev.StreamID, UserID: p.UserID, Name: p.Name, Platform: p.Platform,
			Status: DevicePendingPasscode, EnrolledAt: ev.OccurredAt}
	case *events.DevicePasscodeSetV1:
		if d.Status == DevicePendingPasscode {
			d.Status = DeviceActive
		}
	case *events.DeviceLockedV1:
		if d.Status != DeviceRevoked {
			d.Status, d.LockReason = DeviceLocked, p.Reason
		}
	case *events.DeviceUnlockedV1:
		if d.Status == DeviceLocked {
			d.Status, d.LockReason = DeviceActive, ""
		}
	case *events.DeviceBiometricKeyEnrolledV1:
		d.HasBiometricKey = true
	case *events.DeviceBiometricKeyRemovedV1:
		d.HasBiometricKey = false
	case *events.DeviceRevokedV1:
		d.Status, d.HasBiometricKey = DeviceRevoked, false
	default:
		// Device events this read model does not show (passcode failures).
	}
	d.UpdatedAt = ev.OccurredAt
	d.Version = ev.Version
	return &d, d.UserID, nil
}
