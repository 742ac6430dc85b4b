package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/codes"

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

// Check verifies r's DPoP header for the request URL u and records its
// jti. A missing proof is (nil, nil): whether one is required is the
// endpoint's decision.
func (c *ProofChecker) Check(ctx context.Context, r *http.Request, u string, requireNonce bool, accessToken string) (*dpop.Proof, error) {
	p, once, err := c.CheckDeferred(ctx, r, u, requireNonce, accessToken)
	if p == nil || err != nil {
		return p, err
	}
	if err := c.Record(ctx, once); err != nil {
		return nil, err
	}
	return p, nil
}

// Record records a proof's jti unless an append already did; a replay is
// a *ProofError.
func (c *ProofChecker) Record(ctx context.Context, once *eventstore.Once) error {
	if once.Recorded() {
		return nil
	}
	fresh, err := c.Replay.Remember(ctx, once.Scope, once.Value, once.Until)
	if err != nil {
		return fmt.Errorf("record DPoP jti: %w", err)
	}
	if !fresh {
		return errProofReplayed
	}
	once.MarkRecorded()
	return nil
}

var errProofReplayed = &ProofError{Code: "invalid_dpop_proof", Reason: "the proof's jti was already used"}

// CheckDeferred verifies the proof like Check but leaves recording its jti
// to the request's first append (eventstore.WithOnce), which saves the
// token endpoint a transaction of its own on every grant: the returned
// Once must be put in the context of the grant, and recorded with Record
// before any answer if no append did. A replayed proof then fails its
// append with eventstore.ErrReplayed, which rolls back everything the
// grant decided.
func (c *ProofChecker) CheckDeferred(ctx context.Context, r *http.Request, u string, requireNonce bool, accessToken string) (*dpop.Proof, *eventstore.Once, error) {
	vals := r.Header.Values("DPoP")
	if len(vals) == 0 {
		return nil, nil, nil
	}
	_, span := tracer.Start(ctx, "dpop.verify")
	defer span.End()
	p, once, err := c.checkDeferred(r, vals, u, requireNonce, accessToken)
	if err != nil {
		span.SetStatus(codes.Error, "refused")
	}
	return p, once, err
}

func (c *ProofChecker) checkDeferred(r *http.Request, vals []string, u string, requireNonce bool, accessToken string) (*dpop.Proof, *eventstore.Once, error) {
	if len(vals) > 1 {
		return nil, nil, &ProofError{Code: "invalid_dpop_proof", Reason: "more than one DPoP header"}
	}
	opts := dpop.Options{Method: r.Method, URL: u, Now: c.Now(), Leeway: DPoPLeeway, AccessToken: accessToken}
	if requireNonce {
		opts.Nonce = c.Nonces.Check
	}
	p, err := dpop.Verify(vals[0], opts)
	switch {
	case errors.Is(err, dpop.ErrUseNonce):
		return nil, nil, &ProofError{Code: "use_dpop_nonce", Reason: "use the DPoP-Nonce this response carries"}
	case errors.Is(err, dpop.ErrInvalidProof):
		return nil, nil, &ProofError{Code: "invalid_dpop_proof", Reason: err.Error()}
	case err != nil:
		return nil, nil, fmt.Errorf("verify DPoP proof: %w", err)
	}
	// A jti is unique per key for as long as its iat is acceptable.
	return p, &eventstore.Once{Scope: "dpop:" + p.JKT, Value: p.JTI, Until: p.IssuedAt.Add(2 * DPoPLeeway)}, nil
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
