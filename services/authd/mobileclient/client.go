// Package mobileclient is the reference mobile client: what a bank's app
// does, in Go, with software stand-ins for the platform keystore keys. It
// enrolls a device with an activation code, seals its passcode with HPKE
// to the server's sealing key, proves every request with DPoP (learning the
// server's nonce as it goes), signs in with the passcode grant and calls
// the API with its DPoP-bound token. The demo and the end-to-end tests run
// it; app developers can read it as a specification in code.
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
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"strongroom.dev/services/authd/internal/sealing"
	"strongroom.dev/services/dpop"
)

// Grant type URNs (CONTRACT.md, Token endpoint).
const (
	GrantPasscode  = "urn:strongroom:params:oauth:grant-type:passcode"
	GrantBiometric = "urn:strongroom:params:oauth:grant-type:biometric-signature"
)

// Client is one app installation on one device. Once enrolled, its
// methods are safe for concurrent use, and so is using copies of it
// side by side; Enroll and EnrollBiometric change the client and must
// not run alongside other calls.
type Client struct {
	// Issuer is authd's public URL.
	Issuer   string
	HTTP     *http.Client
	ClientID string
	// DeviceKey stands in for the platform keystore's device key (ECDSA
	// P-256, no user presence needed). It signs every DPoP proof.
	DeviceKey *ecdsa.PrivateKey
	DeviceID  string
	// BiometricKey stands in for the keystore's biometric key (ECDSA
	// P-256, usable only after a strong biometric prompt, auth-per-use).
	// It signs the assertions of the biometric grant; nil until enrolled.
	BiometricKey *ecdsa.PrivateKey
	// SealResponses asks for token responses sealed to a one-time key.
	SealResponses bool
	// Now is the device's clock (nil: time.Now): the iat of proofs and
	// assertions, the expiry of pin sets.
	Now func() time.Time

	// nonces is the server's latest DPoP nonce, shared by copies of the
	// client and safe for concurrent use: an app refreshes from several
	// threads at once. Nil (a Client built as a literal) learns the nonce
	// anew on each request.
	nonces *nonceCell
}

// nonceCell holds the latest DPoP-Nonce the server sent.
type nonceCell struct {
	mu sync.Mutex
	v  string
}

func (n *nonceCell) get() string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.v
}

func (n *nonceCell) set(v string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.v = v
	n.mu.Unlock()
}

// New returns a client with a fresh device key.
func New(issuer string, hc *http.Client) (*Client, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{Issuer: strings.TrimSuffix(issuer, "/"), HTTP: hc, ClientID: "mobile-app", DeviceKey: k, nonces: &nonceCell{}}, nil
}

// KeyThumbprint is the device key's RFC 7638 thumbprint (cnf.jkt).
func (c *Client) KeyThumbprint() string { return dpop.Thumbprint(&c.DeviceKey.PublicKey) }

// Error is a refusal from authd, with its stable code.
type Error struct {
	Status int
	// Code is strongroom_error, or the RFC 6749 error / RFC 9457 code.
	Code              string
	Description       string
	AttemptsRemaining *int
	RetryAfter        time.Duration
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%d %s", e.Status, e.Code)
	if e.AttemptsRemaining != nil {
		s += fmt.Sprintf(" (attempts remaining: %d)", *e.AttemptsRemaining)
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Code returns the authd error code of err, or "".
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// request sends one request with a fresh DPoP proof, retrying once when
// the server asks for a nonce (RFC 9449 §8). prepare builds the request
// anew for each try (a sealed passcode is bound to the proof's jti).
func (c *Client) request(ctx context.Context, method, path string, prepare func(jti string) (body []byte, ctype string, err error), accessToken string) (*http.Response, []byte, error) {
	u := c.Issuer + path
	nonce := c.nonces.get()
	for try := 0; ; try++ {
		proof, jti, err := c.proof(method, u, nonce, accessToken)
		if err != nil {
			return nil, nil, err
		}
		var body []byte
		var ctype string
		if prepare != nil {
			if body, ctype, err = prepare(jti); err != nil {
				return nil, nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("DPoP", proof)
		if accessToken != "" {
			req.Header.Set("Authorization", "DPoP "+accessToken)
		}
		resp, err := c.HTTP.Do(req)
		if err != nil {
			return nil, nil, err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, nil, err
		}
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			nonce = n
			c.nonces.set(n)
		}
		if try == 0 && resp.StatusCode == http.StatusBadRequest && resp.Header.Get("DPoP-Nonce") != "" && errorCode(raw) == "use_dpop_nonce" {
			continue
		}
		return resp, raw, nil
	}
}

// proof signs a DPoP proof and returns it with its jti.
func (c *Client) proof(method, u, nonce, accessToken string) (string, string, error) {
	p, err := dpop.NewProof(c.DeviceKey, method, u, nonce, accessToken, c.now())
	if err != nil {
		return "", "", err
	}
	// The jti is in the proof's claims; read it back rather than
	// re-implementing NewProof.
	parts := strings.Split(p, ".")
	var claims struct {
		JTI string `json:"jti"`
	}
	raw, err := decodeSegment(parts[1])
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		return "", "", errors.New("cannot read the proof's jti")
	}
	return p, claims.JTI, nil
}

func errorCode(raw []byte) string {
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	for _, k := range []string{"strongroom_error", "code", "error"} {
		if s, ok := m[k].(string); ok {
			return s
		}
	}
	return ""
}

func apiError(resp *http.Response, raw []byte) error {
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	e := &Error{Status: resp.StatusCode, Code: errorCode(raw)}
	if d, ok := m["error_description"].(string); ok {
		e.Description = d
	} else if d, ok := m["detail"].(string); ok {
		e.Description = d
	}
	if n, ok := m["attempts_remaining"].(float64); ok {
		i := int(n)
		e.AttemptsRemaining = &i
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		e.RetryAfter = time.Duration(ra) * time.Second
	}
	return e
}

func jsonBody(v any) func(string) ([]byte, string, error) {
	return func(string) ([]byte, string, error) {
		b, err := json.Marshal(v)
		return b, "application/json", err
	}
}

// Enroll registers this device's key with an activation code.
func (c *Client) Enroll(ctx context.Context, code, name, platform string) error {
	resp, raw, err := c.request(ctx, http.MethodPost, "/v1/devices",
		jsonBody(map[string]string{"activation_code": code, "name": name, "platform": platform}), "")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated {
		return apiError(resp, raw)
	}
	var out struct {
		DeviceID string `json:"device_id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.DeviceID == "" {
		return errors.New("enroll: no device_id in the response")
	}
	c.DeviceID = out.DeviceID
	return nil
}

// sealingKey fetches the server's current default sealing key.
func (c *Client) sealingKey(ctx context.Context) (sealing.PublicEntry, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Issuer+"/.well-known/sealing-keys.json", nil)
	if err != nil {
		return sealing.PublicEntry{}, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return sealing.PublicEntry{}, err
	}
	defer resp.Body.Close()
	var doc struct {
		Keys []sealing.PublicEntry `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || len(doc.Keys) == 0 {
		return sealing.PublicEntry{}, errors.New("no sealing keys")
	}
	for _, k := range doc.Keys {
		if k.KEMID == sealing.KEMXWing {
			return k, nil
		}
	}
	return doc.Keys[0], nil
}

// SealPasscode seals a passcode for one request, bound to this device and
// to the request's DPoP jti (CONTRACT.md, Sealing).
func (c *Client) SealPasscode(key sealing.PublicEntry, passcode, jti string) (string, error) {
	return sealing.Seal(key, []byte(sealing.InfoPasscode), sealing.PasscodeAAD(c.DeviceID, jti), []byte(passcode))
}

// SetPasscode sets the passcode: right after enrollment, or with a reset
// code (Forgot passcode).
func (c *Client) SetPasscode(ctx context.Context, passcode, resetCode string) error {
	key, err := c.sealingKey(ctx)
	if err != nil {
		return err
	}
	resp, raw, err := c.request(ctx, http.MethodPut, "/v1/devices/"+url.PathEscape(c.DeviceID)+"/passcode",
		func(jti string) ([]byte, string, error) {
			sealed, err := c.SealPasscode(key, passcode, jti)
			if err != nil {
				return nil, "", err
			}
			body := map[string]string{"passcode_sealed": sealed, "sealing_kid": key.KID}
			if resetCode != "" {
				body["activation_code"] = resetCode
			}
			return jsonBody(body)("")
		}, "")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusNoContent {
		return apiError(resp, raw)
	}
	return nil
}

// Tokens is a token response.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// SignIn runs the passcode grant.
func (c *Client) SignIn(ctx context.Context, passcode string) (*Tokens, error) {
	key, err := c.sealingKey(ctx)
	if err != nil {
		return nil, err
	}
	return c.grant(ctx, func(jti string) (url.Values, error) {
		sealed, err := c.SealPasscode(key, passcode, jti)
		if err != nil {
			return nil, err
		}
		return url.Values{"grant_type": {GrantPasscode}, "client_id": {c.ClientID}, "device_id": {c.DeviceID},
			"passcode_sealed": {sealed}, "sealing_kid": {key.KID}}, nil
	})
}

// grant posts a device grant to the token endpoint; form builds its
// parameters for the proof's jti. With SealResponses the answer comes back
// sealed to a one-time key and is opened here.
func (c *Client) grant(ctx context.Context, params func(jti string) (url.Values, error)) (*Tokens, error) {
	var respKey *sealing.ClientPrivateKey
	var usedJTI string
	resp, raw, err := c.request(ctx, http.MethodPost, "/oauth2/token", func(jti string) ([]byte, string, error) {
		usedJTI = jti
		form, err := params(jti)
		if err != nil {
			return nil, "", err
		}
		if c.SealResponses {
			pub, priv, err := sealing.NewClientKey(sealing.KEMXWing)
			if err != nil {
				return nil, "", err
			}
			respKey = priv
			raw, _ := json.Marshal(pub)
			form.Set("response_sealing_key", string(raw))
		}
		return []byte(form.Encode()), "application/x-www-form-urlencoded", nil
	}, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, raw)
	}
	if respKey != nil {
		var sealed struct {
			Sealed string `json:"sealed"`
		}
		if err := json.Unmarshal(raw, &sealed); err != nil || sealed.Sealed == "" {
			return nil, errors.New("sign in: expected a sealed response")
		}
		if raw, err = respKey.Open(sealed.Sealed, []byte(sealing.InfoTokenResponse), []byte(usedJTI)); err != nil {
			return nil, fmt.Errorf("open sealed token response: %w", err)
		}
	}
	var t Tokens
	if err := json.Unmarshal(raw, &t); err != nil || t.AccessToken == "" {
		return nil, errors.New("sign in: no access token in the response")
	}
	return &t, nil
}

// Session is one of the user's sessions.
type Session struct {
	SID        string    `json:"sid"`
	DeviceID   string    `json:"device_id"`
	DeviceName string    `json:"device_name"`
	ACR        string    `json:"acr"`
	StartedAt  time.Time `json:"started_at"`
	Current    bool      `json:"current"`
}

// Sessions lists the user's active sessions with a DPoP-bound token.
func (c *Client) Sessions(ctx context.Context, t *Tokens) ([]Session, error) {
	resp, raw, err := c.request(ctx, http.MethodGet, "/v1/sessions", nil, t.AccessToken)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, raw)
	}
	var out struct {
		Sessions []Session `json:"sessions"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// Refresh exchanges the refresh token for a new access token and its
// successor refresh token (DPoP-bound, with the server nonce).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	resp, raw, err := c.request(ctx, http.MethodPost, "/oauth2/token", func(string) ([]byte, string, error) {
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {c.ClientID}, "refresh_token": {refreshToken}}
		return []byte(form.Encode()), "application/x-www-form-urlencoded", nil
	}, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, raw)
	}
	var t Tokens
	if err := json.Unmarshal(raw, &t); err != nil || t.AccessToken == "" {
		return nil, errors.New("refresh: no access token in the response")
	}
	return &t, nil
}

// SignOut ends one of the user's sessions (DELETE /v1/sessions/{sid}).
func (c *Client) SignOut(ctx context.Context, t *Tokens, sid string) error {
	return c.delete(ctx, t, "/v1/sessions/"+url.PathEscape(sid))
}

// RemoveDevice revokes one of the user's devices and all its sessions.
func (c *Client) RemoveDevice(ctx context.Context, t *Tokens, deviceID string) error {
	return c.delete(ctx, t, "/v1/devices/"+url.PathEscape(deviceID))
}

func (c *Client) delete(ctx context.Context, t *Tokens, path string) error {
	resp, raw, err := c.request(ctx, http.MethodDelete, path, nil, t.AccessToken)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusNoContent {
		return apiError(resp, raw)
	}
	return nil
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
