package readmodel

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/projection"
)

func ev(t *testing.T, version int64, typ string, payload any) eventstore.Event {
	t.Helper()
	data, v, err := events.Default.Encode(typ, payload)
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.Event{StreamID: "dev-1", StreamType: events.StreamDevice, Version: version, Type: typ,
		SchemaVersion: v, Data: data, OccurredAt: time.Date(2026, 1, 1, 0, 0, int(version), 0, time.UTC)}
}

// Given past events, when this event, then this device.
func TestDevicesFold(t *testing.T) {
	enrolled := func(t *testing.T) eventstore.Event {
		return ev(t, 1, events.DeviceEnrolled, events.DeviceEnrolledV1{UserID: "alice", Name: "Pixel", Platform: "android"})
	}
	cases := []struct {
		name   string
		events func(t *testing.T) []eventstore.Event
		want   func(d *Device) bool
	}{
		{"enrolled waits for a passcode", func(t *testing.T) []eventstore.Event { return []eventstore.Event{enrolled(t)} },
			func(d *Device) bool {
				return d.Status == DevicePendingPasscode && d.UserID == "alice" && d.Name == "Pixel"
			}},
		{"passcode makes it active", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{enrolled(t), ev(t, 2, events.DevicePasscodeSet, events.DevicePasscodeSetV1{PepperID: "p"})}
		}, func(d *Device) bool { return d.Status == DeviceActive && d.Version == 2 }},
		{"locked with a reason", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{enrolled(t), ev(t, 2, events.DevicePasscodeSet, events.DevicePasscodeSetV1{}),
				ev(t, 3, events.DeviceLocked, events.DeviceLockedV1{Reason: "passcode_failures"})}
		}, func(d *Device) bool { return d.Status == DeviceLocked && d.LockReason == "passcode_failures" }},
		{"unlocked is active again", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{enrolled(t), ev(t, 2, events.DeviceLocked, events.DeviceLockedV1{Reason: "back_office"}),
				ev(t, 3, events.DeviceUnlocked, events.DeviceUnlockedV1{})}
		}, func(d *Device) bool { return d.Status == DeviceActive && d.LockReason == "" }},
		{"biometric key added and removed", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{enrolled(t), ev(t, 2, events.DeviceBiometricKeyEnrolled, events.DeviceBiometricKeyEnrolledV1{}),
				ev(t, 3, events.DeviceBiometricKeyRemoved, events.DeviceBiometricKeyRemovedV1{})}
		}, func(d *Device) bool { return !d.HasBiometricKey && d.Version == 3 }},
		{"revoked stays revoked", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{enrolled(t), ev(t, 2, events.DeviceBiometricKeyEnrolled, events.DeviceBiometricKeyEnrolledV1{}),
				ev(t, 3, events.DeviceRevoked, events.DeviceRevokedV1{Reason: "user"}),
				ev(t, 4, events.DeviceLocked, events.DeviceLockedV1{Reason: "back_office"})}
		}, func(d *Device) bool { return d.Status == DeviceRevoked && !d.HasBiometricKey }},
		{"a redelivered event changes nothing", func(t *testing.T) []eventstore.Event {
			lock := ev(t, 2, events.DeviceLocked, events.DeviceLockedV1{Reason: "x"})
			unlock := ev(t, 3, events.DeviceUnlocked, events.DeviceUnlockedV1{})
			return []eventstore.Event{enrolled(t), lock, unlock, lock}
		}, func(d *Device) bool { return d.Status == DeviceActive && d.Version == 3 }},
		{"failures are not shown", func(t *testing.T) []eventstore.Event {
			return []eventstore.Event{enrolled(t), ev(t, 2, events.DevicePasscodeFailed, events.DevicePasscodeFailedV1{ConsecutiveFailures: 1})}
		}, func(d *Device) bool { return d.Status == DevicePendingPasscode && d.Version == 2 }},
	}
	p := Devices(events.Default)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var doc *projection.Doc
			for _, e := range c.events(t) {
				next, err := p.Apply(doc, e)
				if err != nil {
					t.Fatal(err)
				}
				doc = next
			}
			d, err := projection.Decode[Device](*doc)
			if err != nil {
				t.Fatal(err)
			}
			if doc.Owner != "alice" || !c.want(d) {
				t.Fatalf("device = %+v (owner %q)", d, doc.Owner)
			}
		})
	}
}

func TestDevicesRefusesWhatItCannotRead(t *testing.T) {
	p := Devices(events.Default)
	if _, ok := p.Key(eventstore.Event{StreamID: "s-1", StreamType: events.StreamSession}); ok {
		t.Fatal("session events must not touch the devices read model")
	}
	// An event before enrollment means the log and the model disagree.
	if _, err := p.Apply(nil, ev(t, 1, events.DeviceLocked, events.DeviceLockedV1{})); err == nil {
		t.Fatal("lock before enrollment accepted")
	}
	bad := ev(t, 1, events.DeviceEnrolled, events.DeviceEnrolledV1{})
	bad.Data = json.RawMessage(`{"user_id": 42}`)
	if _, err := p.Apply(nil, bad); !errors.Is(err, events.ErrMalformed) {
		t.Fatalf("malformed payload: %v", err)
	}
	bad.SchemaVersion = 9
	if _, err := p.Apply(nil, bad); !errors.Is(err, events.ErrUnknownVersion) {
		t.Fatalf("future schema: %v", err)
	}
}
