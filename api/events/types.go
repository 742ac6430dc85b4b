package events

import "time"

// Stream types: one stream per device, per session and per activation code.
const (
	StreamDevice     = "device"
	StreamSession    = "session"
	StreamActivation = "activation"
	// StreamUser holds what must be decided per user with optimistic
	// concurrency (how many devices a user has).
	StreamUser = "user"
	// StreamChallenge is one biometric challenge: issued, then consumed by
	// at most one grant.
	StreamChallenge = "challenge"
)

// Event type names (CONTRACT.md, Events). They are stable forever: a new
// meaning gets a new name, a new shape gets a new schema version.
const (
	ActivationIssued           = "activation.issued"
	ActivationConsumed         = "activation.consumed"
	DeviceEnrolled             = "device.enrolled"
	DevicePasscodeSet          = "device.passcode_set"
	DevicePasscodeAttempted    = "device.passcode_attempted"
	DevicePasscodeVerified     = "device.passcode_verified"
	DevicePasscodeFailed       = "device.passcode_failed"
	DeviceLocked               = "device.locked"
	DeviceUnlocked             = "device.unlocked"
	DeviceBiometricKeyEnrolled = "device.biometric_key_enrolled"
	DeviceBiometricKeyRemoved  = "device.biometric_key_removed"
	DeviceRevoked              = "device.revoked"
	SessionStarted             = "session.started"
	SessionRefreshed           = "session.refreshed"
	SessionRefreshReuse        = "session.refresh_reuse_detected"
	SessionRevoked             = "session.revoked"
	SessionExpired             = "session.expired"
	ChallengeIssued            = "challenge.issued"
	ChallengeConsumed          = "challenge.consumed"
	UserDeviceAdded            = "user.device_added"
	UserDeviceRemoved          = "user.device_removed"
)

// Payloads never hold a secret: codes, passcodes and refresh tokens appear
// only as identifiers of their keyed hashes. Personal data (IP address, user
// agent) is not part of any payload; it travels in the event's separate
// personal part.

// ActivationIssuedV1 records a back-office activation or reset code. The
// code itself is never stored; CodeHash is its keyed HMAC-SHA-256 under
// HMACKeyID, enough to find it again and nothing more.
type ActivationIssuedV1 struct {
	UserID    string    `json:"user_id"`
	Purpose   string    `json:"purpose"` // "enroll" or "reset"
	CodeHash  string    `json:"code_hash"`
	HMACKeyID string    `json:"hmac_key_id"`
	ExpiresAt time.Time `json:"expires_at"`
	Operator  string    `json:"operator"`
	ClientID  string    `json:"client_id"`
}

// ActivationConsumedV1 records the single use of a code.
type ActivationConsumedV1 struct {
	DeviceID string `json:"device_id"`
	Purpose  string `json:"purpose"`
}

// DeviceEnrolledV1 records a new device and its DPoP key.
type DeviceEnrolledV1 struct {
	UserID              string         `json:"user_id"`
	ActivationID        string         `json:"activation_id"`
	Name                string         `json:"name"`
	Platform            string         `json:"platform"`
	KeyThumbprint       string         `json:"key_jkt"`
	PublicKey           map[string]any `json:"public_jwk"`
	AttestationVerified bool           `json:"attestation_verified"`
}

// DevicePasscodeSetV1 records that a passcode was set. The Argon2id verifier
// itself is credential material and stays out of the immutable log; the event
// names only the pepper it was made with.
type DevicePasscodeSetV1 struct {
	PepperID     string `json:"pepper_id"`
	ActivationID string `json:"activation_id,omitempty"` // set for a reset
}

// DevicePasscodeAttemptedV1 counts a passcode attempt before its hash is
// computed (CONTRACT.md, Passcode attempts): an attempt that never resolves
// (a crash mid-hash) counts as a failure.
type DevicePasscodeAttemptedV1 struct {
	Attempt int `json:"attempt"`
}

// DevicePasscodeVerifiedV1 records a correct passcode; it sets the count
// of consecutive failures back to zero.
type DevicePasscodeVerifiedV1 struct {
	Attempt int `json:"attempt"`
}

// DevicePasscodeFailedV1 records one counted wrong passcode.
type DevicePasscodeFailedV1 struct {
	ConsecutiveFailures int `json:"consecutive_failures"`
	AttemptsRemaining   int `json:"attempts_remaining"`
}

// DeviceLockedV1 records a lock by too many failures or by the back office.
type DeviceLockedV1 struct {
	Reason   string `json:"reason"` // "passcode_failures" or "back_office"
	Operator string `json:"operator,omitempty"`
}

// DeviceUnlockedV1 records the lifting of a lock by a reset.
type DeviceUnlockedV1 struct {
	ActivationID string `json:"activation_id"`
}

// DeviceBiometricKeyEnrolledV1 records a (replacement) biometric key.
type DeviceBiometricKeyEnrolledV1 struct {
	KeyThumbprint       string         `json:"key_jkt"`
	PublicKey           map[string]any `json:"public_jwk"`
	AttestationVerified bool           `json:"attestation_verified"`
}

// DeviceBiometricKeyRemovedV1 records the removal of the biometric key.
type DeviceBiometricKeyRemovedV1 struct {
	KeyThumbprint string `json:"key_jkt"`
}

// DeviceRevokedV1 records the end of a device.
type DeviceRevokedV1 struct {
	Reason   string `json:"reason"`
	Operator string `json:"operator,omitempty"`
}

// SessionStartedV1 records a successful grant and the access token it
// issued. Tokens appear only as identifiers (SHA-256 of the JWS signature),
// never as themselves.
type SessionStartedV1 struct {
	// UserID is the user the session belongs to; empty for a client's own
	// session (client_credentials), whose Subject is the client id.
	UserID    string   `json:"user_id,omitempty"`
	Subject   string   `json:"subject"`
	DeviceID  string   `json:"device_id,omitempty"`
	ClientID  string   `json:"client_id"`
	GrantType string   `json:"grant_type"`
	ACR       string   `json:"acr,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	// AuthTime is when the user last proved a factor; a refresh keeps it.
	AuthTime time.Time `json:"auth_time"`
	// KeyThumbprint is the RFC 7638 thumbprint of the DPoP key the tokens
	// are bound to (cnf.jkt), empty for unbound tokens.
	KeyThumbprint        string    `json:"key_jkt,omitempty"`
	Scopes               []string  `json:"scopes"`
	Audience             []string  `json:"audience"`
	AccessTokenID        string    `json:"access_token_id"`
	AccessTokenExpiresAt time.Time `json:"access_token_expires_at"`
	// RefreshTokenID identifies the first refresh token (its keyed hash);
	// empty for grants without one.
	RefreshTokenID string `json:"refresh_token_id,omitempty"`
	// IdleExpiresAt is when the session ends unless refreshed.
	IdleExpiresAt time.Time `json:"idle_expires_at,omitempty"`
	// ExpiresAt is the session's absolute end.
	ExpiresAt time.Time `json:"expires_at"`
}

// SessionRefreshedV1 records a refresh: the presented refresh token, its
// successor (the same successor again when the presented token's successor
// was not used yet: Repeat) and the new access token. Tokens appear only as
// identifiers (keyed hashes).
type SessionRefreshedV1 struct {
	PreviousTokenID      string    `json:"previous_token_id"`
	TokenID              string    `json:"token_id"`
	Repeat               bool      `json:"repeat,omitempty"`
	AccessTokenID        string    `json:"access_token_id"`
	AccessTokenExpiresAt time.Time `json:"access_token_expires_at"`
	IdleExpiresAt        time.Time `json:"idle_expires_at"`
}

// SessionRefreshReuseDetectedV1 records a reuse that revoked the session.
type SessionRefreshReuseDetectedV1 struct {
	TokenID       string `json:"token_id"`
	KeyThumbprint string `json:"key_jkt"`
}

// SessionRevokedV1 records the end of a session and why: "token_revoked"
// (RFC 7009), "back_office", "device_locked", "signed_out",
// "refresh_reuse".
type SessionRevokedV1 struct {
	Reason   string `json:"reason"`
	Operator string `json:"operator,omitempty"`
}

// SessionExpiredV1 records that a session reached its idle or absolute end.
type SessionExpiredV1 struct {
	Reason string `json:"reason"` // "idle" or "absolute"
}

// ChallengeIssuedV1 records a biometric challenge for one device. The
// challenge's stream id is derived from its value, which is not recorded:
// the server finds the challenge by the value the assertion signs.
type ChallengeIssuedV1 struct {
	DeviceID  string    `json:"device_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ChallengeConsumedV1 records the single use of a challenge by a biometric
// grant, in the same append that starts the session it made. It names the
// biometric key that signed the assertion and, when the user confirmed
// authorization details (a payment), the SHA-256 of those details exactly
// as the access token carries them: evidence of what was confirmed, without
// the details themselves in the immutable log.
type ChallengeConsumedV1 struct {
	SessionID                  string   `json:"session_id"`
	KeyThumbprint              string   `json:"key_jkt"`
	AssertionJTI               string   `json:"assertion_jti"`
	AuthorizationTypes         []string `json:"authorization_types,omitempty"`
	AuthorizationDetailsSHA256 string   `json:"authorization_details_sha256,omitempty"`
}

// UserDeviceAddedV1 records a device joining its user's devices; the user
// stream's version makes "at most N devices" exact under concurrency.
type UserDeviceAddedV1 struct {
	DeviceID string `json:"device_id"`
}

// UserDeviceRemovedV1 records a device leaving its user's devices.
type UserDeviceRemovedV1 struct {
	DeviceID string `json:"device_id"`
	Reason   string `json:"reason"`
}

// Default is the registry of every event type in CONTRACT.md.
var Default = MustRegistry(
	Schema{Type: ActivationIssued, Version: 1, Payload: ActivationIssuedV1{}},
	Schema{Type: ActivationConsumed, Version: 1, Payload: ActivationConsumedV1{}},
	Schema{Type: DeviceEnrolled, Version: 1, Payload: DeviceEnrolledV1{}},
	Schema{Type: DevicePasscodeSet, Version: 1, Payload: DevicePasscodeSetV1{}},
	Schema{Type: DevicePasscodeAttempted, Version: 1, Payload: DevicePasscodeAttemptedV1{}},
	Schema{Type: DevicePasscodeVerified, Version: 1, Payload: DevicePasscodeVerifiedV1{}},
	Schema{Type: DevicePasscodeFailed, Version: 1, Payload: DevicePasscodeFailedV1{}},
	Schema{Type: DeviceLocked, Version: 1, Payload: DeviceLockedV1{}},
	Schema{Type: DeviceUnlocked, Version: 1, Payload: DeviceUnlockedV1{}},
	Schema{Type: DeviceBiometricKeyEnrolled, Version: 1, Payload: DeviceBiometricKeyEnrolledV1{}},
	Schema{Type: DeviceBiometricKeyRemoved, Version: 1, Payload: DeviceBiometricKeyRemovedV1{}},
	Schema{Type: DeviceRevoked, Version: 1, Payload: DeviceRevokedV1{}},
	Schema{Type: SessionStarted, Version: 1, Payload: SessionStartedV1{}},
	Schema{Type: SessionRefreshed, Version: 1, Payload: SessionRefreshedV1{}},
	Schema{Type: SessionRefreshReuse, Version: 1, Payload: SessionRefreshReuseDetectedV1{}},
	Schema{Type: SessionRevoked, Version: 1, Payload: SessionRevokedV1{}},
	Schema{Type: SessionExpired, Version: 1, Payload: SessionExpiredV1{}},
	Schema{Type: ChallengeIssued, Version: 1, Payload: ChallengeIssuedV1{}},
	Schema{Type: ChallengeConsumed, Version: 1, Payload: ChallengeConsumedV1{}},
	Schema{Type: UserDeviceAdded, Version: 1, Payload: UserDeviceAddedV1{}},
	Schema{Type: UserDeviceRemoved, Version: 1, Payload: UserDeviceRemovedV1{}},
)
