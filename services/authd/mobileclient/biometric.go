package mobileclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	jose "github.com/go-jose/go-jose/v4"
)

// AssertionType is the typ of a biometric assertion (CONTRACT.md, Token
// endpoint).
const AssertionType = "strongroom-biometric+jwt"

// EnrollBiometric registers a biometric key for this device with a token
// from a passcode sign-in at most 5 minutes old (the server refuses any
// other: insufficient_user_authentication). With key nil a fresh key is
// made, as the app does after the platform invalidated the old one (a new
// fingerprint was added).
func (c *Client) EnrollBiometric(ctx context.Context, t *Tokens, key *ecdsa.PrivateKey) error {
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return err
		}
	}
	jwk, err := jose.JSONWebKey{Key: &key.PublicKey}.MarshalJSON()
	if err != nil {
		return err
	}
	resp, raw, err := c.request(ctx, http.MethodPut, "/v1/devices/"+url.PathEscape(c.DeviceID)+"/biometric-key",
		jsonBody(map[string]json.RawMessage{"public_key": jwk}), t.AccessToken)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusNoContent {
		return apiError(resp, raw)
	}
	c.BiometricKey = key
	return nil
}

// RemoveBiometric removes a device's biometric key (this device's when
// deviceID is empty).
func (c *Client) RemoveBiometric(ctx context.Context, t *Tokens, deviceID string) error {
	if deviceID == "" {
		deviceID = c.DeviceID
	}
	return c.delete(ctx, t, "/v1/devices/"+url.PathEscape(deviceID)+"/biometric-key")
}

// Challenge is a challenge for the biometric key to sign.
type Challenge struct {
	ID        string `json:"challenge_id"`
	Value     string `json:"challenge"`
	ExpiresIn int    `json:"expires_in"`
}

// Challenge asks for a challenge (DPoP with the server's nonce).
func (c *Client) Challenge(ctx context.Context) (*Challenge, error) {
	resp, raw, err := c.request(ctx, http.MethodPost, "/v1/challenges",
		jsonBody(map[string]string{"device_id": c.DeviceID}), "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, apiError(resp, raw)
	}
	var ch Challenge
	if err := json.Unmarshal(raw, &ch); err != nil || ch.Value == "" {
		return nil, errors.New("challenge: no challenge in the response")
	}
	return &ch, nil
}

// Assertion signs a challenge with the biometric key — on a phone, after
// the biometric prompt, which shows the user what details (a payment) they
// confirm. details is an RFC 9396 authorization_details array, or nil.
func (c *Client) Assertion(challenge string, details any) (string, error) {
	if c.BiometricKey == nil {
		return "", errors.New("assertion: no biometric key enrolled")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	claims := map[string]any{"iss": c.DeviceID, "aud": c.Issuer, "nonce": challenge, "iat": c.now().Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti)}
	if details != nil {
		claims["authorization_details"] = details
	}
	// Not HTML-escaped: the details are signed as the user saw them.
	var payload bytes.Buffer
	enc := json.NewEncoder(&payload)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(claims); err != nil {
		return "", err
	}
	return SignAssertion(c.BiometricKey, bytes.TrimSpace(payload.Bytes()))
}

// SignAssertion signs assertion claims as the biometric key does: a
// compact JWS, ES256, typ strongroom-biometric+jwt.
func SignAssertion(key *ecdsa.PrivateKey, payload []byte) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType(AssertionType))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// SignInBiometric runs the biometric-signature grant: a challenge, an
// assertion over it (with details, if any), the grant. A token that
// carries details comes without a refresh token.
func (c *Client) SignInBiometric(ctx context.Context, details any) (*Tokens, error) {
	ch, err := c.Challenge(ctx)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	a, err := c.Assertion(ch.Value, details)
	if err != nil {
		return nil, err
	}
	return c.GrantBiometric(ctx, a)
}

// GrantBiometric sends one assertion to the token endpoint.
func (c *Client) GrantBiometric(ctx context.Context, assertion string) (*Tokens, error) {
	return c.grant(ctx, func(string) (url.Values, error) {
		return url.Values{"grant_type": {GrantBiometric}, "client_id": {c.ClientID}, "device_id": {c.DeviceID},
			"assertion": {assertion}}, nil
	})
}
