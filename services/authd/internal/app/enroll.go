package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"
	"unicode/utf8"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/domain/activation"
	"strongroom.dev/services/authd/internal/eventstore"
)

// IssueActivation creates an activation or reset code for a user. The
// code is returned once and stored only as its keyed HMAC (the stream id).
func (s *Service) IssueActivation(ctx context.Context, userID, purpose, operator, clientID string) (string, time.Time, error) {
	if !validID(userID) {
		return "", time.Time{}, errInvalid("user_id must be 1..128 of [A-Za-z0-9._:@-]")
	}
	if purpose != activation.Enroll && purpose != activation.Reset {
		return "", time.Time{}, errInvalid("purpose must be enroll or reset")
	}
	code, streamID, keyID, err := s.Codes.New()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.Now().Add(s.ActivationTTL).UTC().Truncate(time.Second)
	_, err = s.Events.Append(ctx, eventstore.Append{
		StreamID: streamID, StreamType: events.StreamActivation, UserID: userID,
		Events: []eventstore.Pending{{Type: events.ActivationIssued, Payload: events.ActivationIssuedV1{
			UserID: userID, Purpose: purpose, CodeHash: streamID, HMACKeyID: keyID,
			ExpiresAt: exp, Operator: operator, ClientID: clientID,
		}}},
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue activation code: %w", err)
	}
	return code, exp, nil
}

// Enrollment is what a new device sends.
type Enrollment struct {
	Code, Name, Platform string
	// KeyThumbprint is the device key's RFC 7638 thumbprint: the DPoP
	// proof's key, verified by the port.
	KeyThumbprint string
	PublicJWK     map[string]any
}

var platforms = map[string]bool{"android": true, "ios": true}

// EnrollDevice registers a device key and consumes its enroll code in one
// atomic append over three streams: the code, the new device, and the
// user's (whose version makes "at most MaxDevices" exact when two
// enrollments race).
func (s *Service) EnrollDevice(ctx context.Context, in Enrollment) (string, error) {
	if in.Name == "" || len(in.Name) > 64 || !utf8.ValidString(in.Name) || !printable(in.Name) {
		return "", errInvalid("name must be 1..64 printable characters")
	}
	if !platforms[in.Platform] {
		return "", errInvalid("platform must be android or ios")
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	deviceID := "dev_" + base64.RawURLEncoding.EncodeToString(b)
	err := retry(func() error {
		code, err := s.readActivation(ctx, in.Code)
		if err != nil {
			return err
		}
		if !code.Usable(s.Now(), activation.Enroll) {
			return errActivation()
		}
		userEvs, err := s.Events.ReadStream(ctx, userStream(code.UserID), 0)
		if err != nil {
			return err
		}
		devices := map[string]bool{}
		var userVersion int64
		for _, ev := range userEvs {
			userVersion = ev.Version
			p, err := s.Registry.Decode(ev.Type, ev.SchemaVersion, ev.Data)
			if err != nil {
				return err
			}
			switch p := p.(type) {
			case *events.UserDeviceAddedV1:
				devices[p.DeviceID] = true
			case *events.UserDeviceRemovedV1:
				delete(devices, p.DeviceID)
			}
		}
		if len(devices) >= s.MaxDevices {
			return errTooManyDevices()
		}
		_, err = s.Events.Append(ctx,
			eventstore.Append{StreamID: code.ID, StreamType: events.StreamActivation, ExpectedVersion: code.Version,
				Events: []eventstore.Pending{{Type: events.ActivationConsumed, Payload: events.ActivationConsumedV1{DeviceID: deviceID, Purpose: activation.Enroll}}}},
			eventstore.Append{StreamID: deviceID, StreamType: events.StreamDevice, UserID: code.UserID,
				Events: []eventstore.Pending{{Type: events.DeviceEnrolled, Payload: events.DeviceEnrolledV1{
					UserID: code.UserID, ActivationID: code.ID, Name: in.Name, Platform: in.Platform,
					KeyThumbprint: in.KeyThumbprint, PublicKey: in.PublicJWK,
				}}}},
			eventstore.Append{StreamID: userStream(code.UserID), StreamType: events.StreamUser, UserID: code.UserID, ExpectedVersion: userVersion,
				Events: []eventstore.Pending{{Type: events.UserDeviceAdded, Payload: events.UserDeviceAddedV1{DeviceID: deviceID}}}},
		)
		return err
	})
	if err != nil {
		return "", err
	}
	return deviceID, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}
