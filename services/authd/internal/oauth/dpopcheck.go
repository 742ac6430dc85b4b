package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/dpop"
)

// DPoPLeeway is the accepted clock skew of proof iat (CONTRACT.md: ±60 s).
const DPoPLeeway = 60 * time.Second

// ProofChecker verifies the DPoP proof of a request completely: the proof
// itself (dpop.Verify), the server nonce where one is required, and jti
// replay across every replica (the jti is recorded only for a proof that
// passed everything else).
type ProofChecker struct {
	Nonces *Nonces
	Replay ReplayStore
	Now    func() time.Time
}

// ProofError is a DPoP failure, ready to be answered.
type ProofError struct {
	// Code is "invalid_dpop_proof" or "use_dpop_nonce" (RFC 9449 §7.1, §8).
	Code   string
	Reason string
}

func (e *ProofError) Error() string { return e.Code + ": " + e.Reason }

// Check verifies r's DPoP header for the request URL u. A missing proof is
// (nil, nil): whether one is required is the endpoint's decision.
func (c *ProofChecker) Check(ctx context.Context, r *http.Request, u string, requireNonce bool, accessToken string) (*dpop.Proof, error) {
	vals := r.Header.Values("DPoP")
	if len(vals) == 0 {
		return nil, nil
	}
	if len(vals) > 1 {
		return nil, &ProofError{Code: "invalid_dpop_proof", Reason: "more than one DPoP header"}
	}
	opts := dpop.Options{Method: r.Method, URL: u, Now: c.Now(), Leeway: DPoPLeeway, AccessToken: accessToken}
	if requireNonce {
		opts.Nonce = c.Nonces.Check
	}
	p, err := dpop.Verify(vals[0], opts)
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return nil, &ProofError{Code: "use_dpop_nonce", Reason: "use the DPoP-Nonce this response carries"}
	case errors.Is(err, dpop.ErrInvalidProof):
		return nil, &ProofError{Code: "invalid_dpop_proof", Reason: err.Error()}
	case err != nil:
		return nil, fmt.Errorf("verify DPoP proof: %w", err)
	}
	// A jti is unique per key for as long as its iat is acceptable.
	fresh, err := c.Replay.Remember(ctx, "dpop:"+p.JKT, p.JTI, p.IssuedAt.Add(2*DPoPLeeway))
	if err != nil {
		return nil, fmt.Errorf("record DPoP jti: %w", err)
	}
	if !fresh {
		return nil, &ProofError{Code: "invalid_dpop_proof", Reason: "the proof's jti was already used"}
	}
	return p, nil
}

type proofKey struct{}

// WithProof returns a context carrying the request's verified proof, for
// the grant handlers that run after the HTTP layer verified it.
func WithProof(ctx context.Context, p *dpop.Proof) context.Context {
	return context.WithValue(ctx, proofKey{}, p)
}

// ProofFrom returns the verified proof of the request, if any.
func ProofFrom(ctx context.Context) (*dpop.Proof, bool) {
	p, ok := ctx.Value(proofKey{}).(*dpop.Proof)
	return p, ok && p != nil
}

// DeviceKeys finds the DPoP key a device enrolled with.
type DeviceKeys interface {
	// DeviceKey returns the thumbprint of the device's key; ok is false for
	// an unknown or revoked device.
	DeviceKey(ctx context.Context, deviceID string) (jkt string, ok bool, err error)
}

// StreamDeviceKeys reads device keys from each device's own stream, the
// consistent source security decisions must use.
type StreamDeviceKeys struct {
	Events   eventstore.Store
	Registry *events.Registry
}

// DeviceKey implements DeviceKeys.
func (d StreamDeviceKeys) DeviceKey(ctx context.Context, deviceID string) (string, bool, error) {
	if deviceID == "" || len(deviceID) > eventstore.MaxIDLength {
		return "", false, nil
	}
	evs, err := d.Events.ReadStream(ctx, deviceID, 0)
	if err != nil {
		return "", false, err
	}
	jkt := ""
	for _, ev := range evs {
		if ev.StreamType != events.StreamDevice {
			return "", false, nil
		}
		switch ev.Type {
		case events.DeviceEnrolled:
			p, err := events.DecodeAs[events.DeviceEnrolledV1](d.Registry, ev.Type, ev.SchemaVersion, ev.Data)
			if err != nil {
				return "", false, err
			}
			jkt = p.KeyThumbprint
		case events.DeviceRevoked:
			return "", false, nil
		}
	}
	return jkt, jkt != "", nil
}
