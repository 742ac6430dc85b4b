package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"strongroom.dev/api/authzdetails"
	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/assertion"
	"strongroom.dev/services/authd/internal/domain/challenge"
	"strongroom.dev/services/authd/internal/domain/device"
	"strongroom.dev/services/authd/internal/domain/session"
	"strongroom.dev/services/authd/internal/eventstore"
)

// DefaultStepUpMaxAge is how recent the passcode sign-in of a token must be
// for it to enroll a biometric key (CONTRACT.md, Enrollment step 4).
const DefaultStepUpMaxAge = 5 * time.Minute

// The biometric refusals (CONTRACT.md, Errors).
var (
	errAssertion = func(detail string) *Error {
		return refuse(400, "invalid_grant", "assertion_invalid", detail)
	}
	errDetails = func() *Error {
		// RFC 9396 §5 names the OAuth error; the contract's code stays
		// assertion_invalid, since the details are part of the assertion.
		return refuse(400, "invalid_authorization_details", "assertion_invalid",
			"the assertion's authorization_details are not valid")
	}
	errNoBiometric = func() *Error {
		return refuse(400, "invalid_request", "biometric_key_missing", "the device has no biometric key; enroll one")
	}
	errNotFound = func() *Error { return refuse(404, "invalid_request", "not_found", "no such device") }
)

// ChallengeInvalid is the refusal of an unknown, used, expired or another
// device's challenge — and of a grant that lost the race for its challenge.
func ChallengeInvalid() *Error {
	return refuse(400, "invalid_grant", "challenge_invalid", "the challenge cannot be used; request a new one")
}

// StepUpRequired is the refusal of a token whose sign-in is not a recent
// enough passcode sign-in (RFC 9470's insufficient_user_authentication).
func StepUpRequired(maxAge time.Duration) *Error {
	return refuse(401, "insufficient_user_authentication", "insufficient_user_authentication",
		fmt.Sprintf("sign in with the passcode (at most %s ago) first", maxAge))
}

// BiometricEnrollment is a request to register a device's biometric key.
type BiometricEnrollment struct {
	// SessionID is the session of the caller's access token; its sign-in
	// must be a passcode one at most StepUpMaxAge ago, on DeviceID.
	SessionID, DeviceID string
	Key                 *assertion.Key
}

func (s *Service) stepUpMaxAge() time.Duration {
	if s.StepUpMaxAge > 0 {
		return s.StepUpMaxAge
	}
	return DefaultStepUpMaxAge
}

// EnrollBiometricKey registers (or replaces) a device's biometric key:
// device.biometric_key_enrolled. Only the device itself may, with a token
// from a passcode sign-in at most StepUpMaxAge old: a refreshed token
// keeps its sign-in's auth_time and a biometric sign-in does not qualify,
// so a stolen session cannot plant its own biometric key. After the
// platform invalidates the key (a new fingerprint was added), the app
// enrolls a new one the same way.
func (s *Service) EnrollBiometricKey(ctx context.Context, in BiometricEnrollment) error {
	sess, _, err := s.sessionState(ctx, in.SessionID)
	if err != nil {
		return err
	}
	if sess == nil || sess.DeviceID == "" || sess.DeviceID != in.DeviceID {
		return errNotFound()
	}
	if sess.ACR != session.ACRPasscode || s.Now().Sub(sess.AuthTime) > s.stepUpMaxAge() {
		return StepUpRequired(s.stepUpMaxAge())
	}
	return retry(func() error {
		d, err := s.readDevice(ctx, in.DeviceID)
		if err != nil {
			return err
		}
		if d == nil || d.Status == device.Revoked || d.UserID != sess.UserID {
			return errNotFound()
		}
		if d.Status == device.Locked {
			return errDeviceLocked()
		}
		if in.Key.JKT == d.KeyThumbprint {
			return errInvalid("the biometric key must be its own key, not the device key")
		}
		if in.Key.JKT == d.BiometricJKT {
			return nil // already this key: nothing changes
		}
		_, err = s.Events.Append(ctx, eventstore.Append{StreamID: d.ID, StreamType: events.StreamDevice, ExpectedVersion: d.Version,
			Events: []eventstore.Pending{{Type: events.DeviceBiometricKeyEnrolled, Payload: events.DeviceBiometricKeyEnrolledV1{
				KeyThumbprint: in.Key.JKT, PublicKey: in.Key.JWK}}}})
		return err
	})
}

// RemoveBiometricKey removes a device's biometric key:
// device.biometric_key_removed. Any signed-in device of the same user may
// (removing only takes a way in away); another user's device is not found.
func (s *Service) RemoveBiometricKey(ctx context.Context, userID, deviceID string) error {
	return retry(func() error {
		d, err := s.readDevice(ctx, deviceID)
		if err != nil {
			return err
		}
		if d == nil || d.Status == device.Revoked || d.UserID != userID {
			return errNotFound()
		}
		if !d.HasBiometric {
			return nil
		}
		_, err = s.Events.Append(ctx, eventstore.Append{StreamID: d.ID, StreamType: events.StreamDevice, ExpectedVersion: d.Version,
			Events: []eventstore.Pending{{Type: events.DeviceBiometricKeyRemoved, Payload: events.DeviceBiometricKeyRemovedV1{
				KeyThumbprint: d.BiometricJKT}}}})
		return err
	})
}

// Challenge is a freshly issued challenge.
type Challenge struct {
	ID, Value string
	ExpiresAt time.Time
}

func (s *Service) challengeLifetime() time.Duration {
	if s.ChallengeLifetime > 0 {
		return s.ChallengeLifetime
	}
	return challenge.DefaultLifetime
}

// IssueChallenge gives a device a challenge for its biometric key to sign:
// challenge.issued on a new stream, owned by the device's user. Only a
// device that could use it gets one: known with this key, not locked, with
// a biometric key.
func (s *Service) IssueChallenge(ctx context.Context, deviceID, jkt string) (*Challenge, error) {
	d, err := s.deviceFor(ctx, deviceID, jkt)
	if err != nil {
		return nil, err
	}
	switch err := d.CheckBiometric(s.Policy); {
	case errors.Is(err, device.ErrLocked):
		return nil, errDeviceLocked()
	case errors.Is(err, device.ErrNoBiometric):
		return nil, errNoBiometric()
	case err != nil:
		return nil, errDeviceUnknown()
	}
	value, id, err := challenge.New()
	if err != nil {
		return nil, err
	}
	exp := s.Now().Add(s.challengeLifetime()).UTC().Truncate(time.Millisecond)
	_, err = s.Events.Append(ctx, eventstore.Append{StreamID: id, StreamType: events.StreamChallenge, UserID: d.UserID,
		Events: []eventstore.Pending{{Type: events.ChallengeIssued, Payload: events.ChallengeIssuedV1{DeviceID: d.ID, ExpiresAt: exp}}}})
	if err != nil {
		return nil, fmt.Errorf("issue challenge: %w", err)
	}
	return &Challenge{ID: id, Value: value, ExpiresAt: exp}, nil
}

// BiometricRequest is a biometric-signature grant request whose DPoP proof
// the port has verified.
type BiometricRequest struct {
	DeviceID, KeyThumbprint string
	// Assertion is the compact JWS; Audience the issuer it must name.
	Assertion, Audience string
	// SessionID is the session the grant will start.
	SessionID string
}

// BiometricSignIn is an accepted biometric assertion.
type BiometricSignIn struct {
	UserID, DeviceID string
	// Details are what the user confirmed, if anything.
	Details *authzdetails.Details
	// Consume is the append that uses up the challenge. It must commit in
	// the same append as the session's start (a conflict there means
	// another grant used the challenge first: ChallengeInvalid).
	Consume eventstore.Append
}

// BiometricSignIn checks a biometric assertion (CONTRACT.md, Token
// endpoint), in order: the device and its key (device_unknown), its lock
// (device_locked), the assertion — header, signature by the registered
// biometric key, claims, authorization details (assertion_invalid) — and
// the challenge it signs: this device's, unused, unexpired
// (challenge_invalid). It changes nothing: the challenge is consumed by
// the append that starts the session.
func (s *Service) BiometricSignIn(ctx context.Context, in BiometricRequest) (*BiometricSignIn, error) {
	d, err := s.deviceFor(ctx, in.DeviceID, in.KeyThumbprint)
	if err != nil {
		return nil, err
	}
	switch err := d.CheckBiometric(s.Policy); {
	case errors.Is(err, device.ErrLocked):
		return nil, errDeviceLocked()
	case errors.Is(err, device.ErrNoBiometric):
		return nil, errAssertion("the device has no biometric key")
	case err != nil:
		return nil, errDeviceUnknown()
	}
	a, err := assertion.Parse(in.Assertion)
	if err != nil {
		return nil, errAssertion(err.Error())
	}
	key, err := assertion.KeyFromJWK(d.BiometricJWK)
	if err != nil {
		return nil, fmt.Errorf("device %s: recorded biometric key unreadable", d.ID)
	}
	claims, err := traced(ctx, "assertion.verify", func() (*assertion.Claims, error) {
		return a.Verify(key.Public, assertion.Expect{Issuer: d.ID, Audience: in.Audience, Now: s.Now()})
	})
	if errors.Is(err, assertion.ErrDetails) {
		return nil, errDetails()
	}
	if err != nil {
		return nil, errAssertion(err.Error())
	}
	id, ok := challenge.ID(claims.Nonce)
	if !ok {
		return nil, ChallengeInvalid()
	}
	evs, err := s.Events.ReadStream(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	if len(evs) > 0 && evs[0].StreamType != events.StreamChallenge {
		return nil, ChallengeInvalid()
	}
	ch, err := challenge.Fold(s.Registry, evs)
	if err != nil {
		return nil, err
	}
	if ch.Usable(d.ID, s.Now()) != nil {
		return nil, ChallengeInvalid()
	}
	used := events.ChallengeConsumedV1{SessionID: in.SessionID, KeyThumbprint: key.JKT, AssertionJTI: claims.JTI}
	if claims.Details != nil {
		sum := sha256.Sum256(claims.Details.Raw)
		used.AuthorizationTypes = claims.Details.Types()
		used.AuthorizationDetailsSHA256 = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return &BiometricSignIn{UserID: d.UserID, DeviceID: d.ID, Details: claims.Details,
		Consume: eventstore.Append{StreamID: ch.ID, StreamType: events.StreamChallenge, UserID: ch.UserID, ExpectedVersion: ch.Version,
			Events: []eventstore.Pending{{Type: events.ChallengeConsumed, Payload: used}}}}, nil
}
