package selfservice_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/mobileclient"
	"strongroom.dev/services/dpop"
)

// putBiometricKey sends PUT /v1/devices/{deviceID}/biometric-key with
// app's DPoP key and token t.
func putBiometricKey(t *testing.T, s *authdtest.Server, app *mobileclient.Client, t0 *mobileclient.Tokens, deviceID, body string) *authdtest.Response {
	t.Helper()
	u := s.PublicURL + "/v1/devices/" + deviceID + "/biometric-key"
	proof, err := dpop.NewProof(app.DeviceKey, http.MethodPut, u, "", t0.AccessToken, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return s.Do(t, http.MethodPut, u, http.Header{"DPoP": {proof}, "Authorization": {"DPoP " + t0.AccessToken},
		"Content-Type": {"application/json"}}, body)
}

func publicJWK(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	b, err := jose.JSONWebKey{Key: &k.PublicKey}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return `{"public_key":` + string(b) + `}`
}

// TestBiometricKeyNeedsARecentPasscode: only the device's own token from a
// passcode sign-in at most StepUpMaxAge old enrolls a biometric key. A
// biometric sign-in, an older passcode sign-in and its refreshed tokens are
// answered 401 insufficient_user_authentication with the RFC 9470
// challenge; another device's path is 404; bad keys are 400. None of them
// changes the device.
func TestBiometricKeyNeedsARecentPasscode(t *testing.T) {
	const maxAge = 2 * time.Second
	s := authdtest.Start(t, authdtest.Options{StepUpMaxAge: maxAge})
	ctx := context.Background()
	app, passTok := biometricApp(t, s, "stepper")
	second := enrolled(t, s, "stepper", "123456") // the same user's other phone
	stranger := enrolled(t, s, "someone-else", "123456")
	bioTok, err := app.SignInBiometric(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	versions := func() [3]int {
		var v [3]int
		for i, id := range []string{app.DeviceID, second.DeviceID, stranger.DeviceID} {
			evs, err := s.App.Store.ReadStream(ctx, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			v[i] = len(evs)
		}
		return v
	}
	before := versions()
	stepUp := func(name string, r *authdtest.Response) {
		t.Helper()
		if r.Status != http.StatusUnauthorized || r.JSON(t)["code"] != "insufficient_user_authentication" {
			t.Fatalf("%s: %d %s, want 401 insufficient_user_authentication", name, r.Status, r.Body)
		}
		h := r.Header.Get("WWW-Authenticate")
		if !strings.Contains(h, `error="insufficient_user_authentication"`) ||
			!strings.Contains(h, `acr_values="urn:strongroom:acr:passcode"`) || !strings.Contains(h, "max_age=2") {
			t.Fatalf("%s: WWW-Authenticate %q", name, h)
		}
	}
	stepUp("a biometric sign-in's token", putBiometricKey(t, s, app, bioTok, app.DeviceID, publicJWK(t, newKey)))

	for _, tc := range []struct {
		name, device, body string
		status             int
		code               string
	}{
		{"the same user's other device", second.DeviceID, publicJWK(t, newKey), 404, "not_found"},
		{"another user's device", stranger.DeviceID, publicJWK(t, newKey), 404, "not_found"},
		{"a private key", app.DeviceID, func() string {
			b, _ := jose.JSONWebKey{Key: newKey}.MarshalJSON()
			return `{"public_key":` + string(b) + `}`
		}(), 400, "invalid_request"},
		{"the device key", app.DeviceID, publicJWK(t, app.DeviceKey), 400, "invalid_request"},
		{"a P-384 key", app.DeviceID, func() string {
			k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			return publicJWK(t, k)
		}(), 400, "invalid_request"},
		{"a symmetric key", app.DeviceID, `{"public_key":{"kty":"oct","k":"c2VjcmV0"}}`, 400, "invalid_request"},
		{"no key", app.DeviceID, `{}`, 400, "invalid_request"},
		{"an unknown member", app.DeviceID, `{"public_key":{},"admin":true}`, 400, "invalid_request"},
		{"not JSON", app.DeviceID, `public_key=1`, 400, "invalid_request"},
	} {
		r := putBiometricKey(t, s, app, passTok, tc.device, tc.body)
		if r.Status != tc.status || r.JSON(t)["code"] != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
		}
	}

	// Once the passcode sign-in is older than maxAge, neither its token
	// nor a refreshed one qualifies: a refresh keeps auth_time.
	time.Sleep(maxAge + time.Second)
	stepUp("an old passcode sign-in's token", putBiometricKey(t, s, app, passTok, app.DeviceID, publicJWK(t, newKey)))
	refreshed, err := app.Refresh(ctx, passTok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	stepUp("a refreshed token", putBiometricKey(t, s, app, refreshed, app.DeviceID, publicJWK(t, newKey)))
	if after := versions(); after != before {
		t.Fatalf("refused enrollments changed devices: %v → %v", before, after)
	}

	// A fresh passcode sign-in enrolls it; the same key again changes
	// nothing.
	fresh, err := app.SignIn(ctx, "123456")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := putBiometricKey(t, s, app, fresh, app.DeviceID, publicJWK(t, newKey)); r.Status != http.StatusNoContent {
			t.Fatalf("fresh passcode token: %d %s", r.Status, r.Body)
		}
	}
	if n := countTypes(t, s, app.DeviceID); n["device.biometric_key_enrolled"] != 2 {
		t.Fatalf("biometric key events %v: want the first key and this one", n)
	}
	// Removal: the user's other device may remove it, a stranger may not.
	strangerTok, err := stranger.SignIn(ctx, "123456")
	if err != nil {
		t.Fatal(err)
	}
	if err := stranger.RemoveBiometric(ctx, strangerTok, app.DeviceID); mobileclient.Code(err) != "not_found" {
		t.Fatalf("a stranger removing the key: %v", err)
	}
	secondTok, err := second.SignIn(ctx, "123456")
	if err != nil {
		t.Fatal(err)
	}
	if err := second.RemoveBiometric(ctx, secondTok, app.DeviceID); err != nil {
		t.Fatalf("the user's other device removing the key: %v", err)
	}
	var dev struct {
		HasBiometricKey bool `json:"has_biometric_key"`
	}
	raw, _ := json.Marshal(deviceDoc(t, s, app.DeviceID))
	_ = json.Unmarshal(raw, &dev)
	if dev.HasBiometricKey {
		t.Fatal("the key is still listed after its removal")
	}
}
