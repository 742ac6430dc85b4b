// Package app holds authd's use cases on devices and activation codes:
// issue a code, enroll a device, set or reset its passcode, sign in with
// it, lock a device. Each reads the aggregates' own streams, decides with
// the pure domain packages, and appends the resulting events with the
// versions it read. Security decisions never read an eventually consistent
// read model.
package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/domain/activation"
	"strongroom.dev/services/authd/internal/domain/device"
	"strongroom.dev/services/authd/internal/domain/session"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/metrics"
	"strongroom.dev/services/authd/internal/passcode"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/internal/sealing"
)

// SecretStore appends events together with a credential change.
type SecretStore interface {
	AppendWithSecret(ctx context.Context, key string, value []byte, appends ...eventstore.Append) ([]eventstore.Event, error)
	Secret(ctx context.Context, key string) ([]byte, bool, error)
}

// Service runs the use cases.
type Service struct {
	Events   eventstore.Store
	Secrets  SecretStore
	Registry *events.Registry
	Models   projection.Reader
	Codes    *activation.Codes
	Hasher   *passcode.Hasher
	Sealing  *sealing.Ring
	Policy   device.Policy
	Passcode passcode.Policy
	// MaxDevices per user (5).
	MaxDevices int
	// ActivationTTL is how long a code is good for (24 h).
	ActivationTTL time.Duration
	// Refresh derives refresh tokens; RefreshLifetime is their (idle)
	// lifetime, at most 30 minutes.
	RefreshTokens   *session.Tokens
	RefreshLifetime time.Duration
	// ChallengeLifetime is how long a biometric challenge may be answered
	// (60 s); StepUpMaxAge how recent a passcode sign-in must be to enroll
	// a biometric key (5 minutes, never more).
	ChallengeLifetime time.Duration
	StepUpMaxAge      time.Duration
	// Metrics counts lockouts and refresh reuse (nil counts nothing).
	Metrics *metrics.Metrics
	Now     func() time.Time
}

// Error is a refusal with the contract's stable code (CONTRACT.md,
// Errors); the ports render it as RFC 6749 JSON or RFC 9457 problems.
type Error struct {
	Code   string
	Status int
	// OAuth is the RFC 6749 error code for /oauth2 answers.
	OAuth  string
	Detail string
	// AttemptsRemaining is set on passcode_incorrect (and device_locked
	// after the last failure).
	AttemptsRemaining *int
	// RetryAfter is set on passcode_throttled.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Detail }

func refuse(status int, oauth, code, detail string) *Error {
	return &Error{Code: code, Status: status, OAuth: oauth, Detail: detail}
}

// The contract's refusals.
var (
	errDeviceUnknown = func() *Error { return refuse(400, "invalid_grant", "device_unknown", "unknown device") }
	errActivation    = func() *Error {
		return refuse(400, "invalid_grant", "activation_code_invalid", "the activation code cannot be used")
	}
	errDeviceLocked = func() *Error {
		return refuse(400, "invalid_grant", "device_locked", "the device is locked; reset the passcode with a code from the bank")
	}
	errSealInvalid = func() *Error {
		return refuse(400, "invalid_request", "seal_invalid", "the sealed passcode does not open")
	}
	errSealingKID = func() *Error {
		return refuse(400, "invalid_request", "sealing_kid_unknown", "unknown sealing key; fetch the sealing keys again")
	}
	errTooManyDevices = func() *Error {
		return refuse(400, "invalid_request", "too_many_devices", "the user has the maximum number of devices")
	}
	errBusy = func() *Error {
		e := refuse(503, "temporarily_unavailable", "temporarily_unavailable", "try again shortly")
		e.RetryAfter = time.Second
		return e
	}
	errInvalid = func(detail string) *Error { return refuse(400, "invalid_request", "invalid_request", detail) }
)

// Status returns an error's HTTP status, 500 for unexpected ones.
func Status(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusInternalServerError
}

// readDevice folds a device's stream.
func (s *Service) readDevice(ctx context.Context, id string) (*device.State, error) {
	if !validID(id) {
		return nil, nil
	}
	evs, err := s.Events.ReadStream(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	if len(evs) > 0 && evs[0].StreamType != events.StreamDevice {
		return nil, nil
	}
	return device.Fold(s.Registry, evs)
}

// readActivation folds a code's stream (nil for an unknown or malformed
// code). The code is looked up under each HMAC key not yet retired: it was
// issued under one of them.
func (s *Service) readActivation(ctx context.Context, code string) (*activation.State, error) {
	ids, ok := s.Codes.StreamIDs(code)
	if !ok {
		return nil, nil
	}
	for _, id := range ids {
		evs, err := s.Events.ReadStream(ctx, id, 0)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			return activation.Fold(s.Registry, evs)
		}
	}
	return nil, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':' || r == '@') {
			return false
		}
	}
	return true
}

func userStream(userID string) string { return "user-" + userID }

// retry runs f again when it lost an optimistic-concurrency race: the
// decision is retaken on fresh state each time. Many parallel requests on
// one stream (a burst of refreshes) each win one round, so the bound is
// generous; a short random pause spreads the contenders.
func retry(f func() error) error {
	var err error
	for attempt := 0; attempt < 128; attempt++ {
		err = f()
		if !errors.Is(err, eventstore.ErrConflict) {
			return err
		}
		if attempt > 2 {
			time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt/8, 4))))
		}
	}
	e := errBusy()
	e.Detail = "too many concurrent changes; try again"
	return fmt.Errorf("%w (%v)", e, err)
}
