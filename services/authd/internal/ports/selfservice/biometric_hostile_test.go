package selfservice_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/mobileclient"
	"strongroom.dev/services/dpop"
)

// signedClaims signs assertion claims with key (the biometric key, or
// whatever key a case wants to try).
func signedClaims(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	a, err := mobileclient.SignAssertion(key, payload)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// claimsFor are the claims of a valid assertion by app over challenge.
func claimsFor(app *mobileclient.Client, challenge string) map[string]any {
	return map[string]any{"iss": app.DeviceID, "aud": app.Issuer, "nonce": challenge,
		"iat": time.Now().Unix(), "jti": fmt.Sprint(time.Now().UnixNano())}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for key, val := range m {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// head is the log's head once it has settled. Head holds back events
// while an older transaction may still commit, and a request's last write
// (its DPoP jti, recorded after the answer) can still be in flight when the
// next line runs: read until two reads 30 ms apart agree.
func head(t *testing.T, s *authdtest.Server) eventstore.Position {
	t.Helper()
	read := func() eventstore.Position {
		p, err := s.App.Store.Head(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	last := read()
	for range 100 {
		time.Sleep(30 * time.Millisecond)
		p := read()
		if p == last {
			return p
		}
		last = p
	}
	t.Fatal("the log's head never settled")
	return last
}

// TestBiometricRefusals: hostile and wrong assertions are refused with the
// contract's codes and change nothing — the log does not move, and the
// challenge they tried is still good for one valid assertion afterwards.
func TestBiometricRefusals(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app, _ := biometricApp(t, s, "hostile")
	other, _ := biometricApp(t, s, "other-user")

	ch, err := app.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otherCh, err := other.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	good := claimsFor(app, ch.Value)
	valid := signedClaims(t, app.BiometricKey, good)
	parts := strings.Split(valid, ".")
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"strongroom-biometric+jwt"}`))
	paid := signedClaims(t, app.BiometricKey, with(good, "authorization_details", payment))
	pp := strings.Split(paid, ".")
	tamperedPayload, _ := base64.RawURLEncoding.DecodeString(pp[1])
	tamperedPayload = []byte(strings.Replace(string(tamperedPayload), `"249.90"`, `"2499.00"`, 1))

	cases := []struct {
		name, assertion, code string
		status                int
	}{
		{"no assertion", "", "assertion_invalid", 400},
		{"garbage", "not.a.jws", "assertion_invalid", 400},
		{"signed by the device key", signedClaims(t, app.DeviceKey, good), "assertion_invalid", 400},
		{"signed by another device's biometric key", signedClaims(t, other.BiometricKey, good), "assertion_invalid", 400},
		{"alg none", noneHeader + "." + parts[1] + ".", "assertion_invalid", 400},
		{"alg none with the real signature", noneHeader + "." + parts[1] + "." + parts[2], "assertion_invalid", 400},
		{"wrong aud", signedClaims(t, app.BiometricKey, with(good, "aud", "https://evil.example")), "assertion_invalid", 400},
		{"two audiences", signedClaims(t, app.BiometricKey, with(good, "aud", []string{app.Issuer, "https://evil.example"})), "assertion_invalid", 400},
		{"iss another device", signedClaims(t, app.BiometricKey, with(good, "iss", other.DeviceID)), "assertion_invalid", 400},
		{"stale iat", signedClaims(t, app.BiometricKey, with(good, "iat", time.Now().Add(-2*time.Minute).Unix())), "assertion_invalid", 400},
		{"iat in the future", signedClaims(t, app.BiometricKey, with(good, "iat", time.Now().Add(2*time.Minute).Unix())), "assertion_invalid", 400},
		{"no jti", signedClaims(t, app.BiometricKey, with(good, "jti", nil)), "assertion_invalid", 400},
		{"no nonce", signedClaims(t, app.BiometricKey, with(good, "nonce", nil)), "assertion_invalid", 400},
		{"tampered authorization_details", pp[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + pp[2], "assertion_invalid", 400},
		{"unknown authorization details type", signedClaims(t, app.BiometricKey, with(good, "authorization_details",
			json.RawMessage(`[{"type":"account_information"}]`))), "assertion_invalid", 400},
		{"payment amount as a number", signedClaims(t, app.BiometricKey, with(good, "authorization_details",
			json.RawMessage(`[{"type":"payment","amount":249.9,"currency":"EUR","creditor":{"name":"M"}}]`))), "assertion_invalid", 400},
		{"another device's challenge", signedClaims(t, app.BiometricKey, with(good, "nonce", otherCh.Value)), "challenge_invalid", 400},
		{"unknown challenge", signedClaims(t, app.BiometricKey, with(good, "nonce", strings.Repeat("A", 43))), "challenge_invalid", 400},
		{"challenge of another shape", signedClaims(t, app.BiometricKey, with(good, "nonce", "short")), "challenge_invalid", 400},
	}
	before := head(t, s)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := app.GrantBiometric(ctx, tc.assertion)
			var e *mobileclient.Error
			if !errorAs(err, &e) || e.Code != tc.code || e.Status != tc.status {
				t.Fatalf("got %v, want %d %s", err, tc.status, tc.code)
			}
		})
	}
	// The details' own refusal names RFC 9396's error.
	r := rawGrant(t, s, app, signedClaims(t, app.BiometricKey, with(good, "authorization_details", json.RawMessage(`[{"type":"x"}]`))), nil)
	if r.Status != 400 || r.JSON(t)["error"] != "invalid_authorization_details" {
		t.Errorf("unknown details type: %d %s", r.Status, r.Body)
	}
	// Details never come from the request around the assertion.
	r = rawGrant(t, s, app, valid, url.Values{"authorization_details": {string(payment)}})
	if r.Status != 400 || r.JSON(t)["error"] != "invalid_request" {
		t.Errorf("authorization_details as a parameter: %d %s", r.Status, r.Body)
	}
	// Another device's DPoP key with this device's id and assertion.
	stranger := *other
	stranger.DeviceID = app.DeviceID
	if _, err := stranger.GrantBiometric(ctx, valid); mobileclient.Code(err) != "device_unknown" {
		t.Errorf("the assertion with another device's DPoP key: %v", err)
	}
	if after := head(t, s); after != before {
		t.Fatalf("refused grants moved the log from %v to %v", before, after)
	}

	// Locked by the back office: the very assertion that would work is
	// refused, and so is a challenge.
	lock(t, s, app.DeviceID)
	locked := head(t, s)
	if _, err := app.GrantBiometric(ctx, valid); mobileclient.Code(err) != "device_locked" {
		t.Fatalf("locked device: %v", err)
	}
	if _, err := app.Challenge(ctx); mobileclient.Code(err) != "device_locked" {
		t.Fatalf("a challenge for a locked device: %v", err)
	}
	if after := head(t, s); after != locked {
		t.Fatalf("refusals of a locked device moved the log")
	}

	// Nothing above used the other user's challenge: it still works, once.
	if _, err := other.GrantBiometric(ctx, signedClaims(t, other.BiometricKey, claimsFor(other, otherCh.Value))); err != nil {
		t.Fatalf("the other device's challenge after all the refusals: %v", err)
	}
	if _, err := other.GrantBiometric(ctx, signedClaims(t, other.BiometricKey, claimsFor(other, otherCh.Value))); mobileclient.Code(err) != "challenge_invalid" {
		t.Fatalf("a challenge used twice: %v", err)
	}
}

// TestBiometricChallengeExpires: a challenge answered after its lifetime
// is refused, and the log does not move; a revoked device gets nothing.
func TestBiometricChallengeExpires(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{ChallengeLifetime: time.Second})
	ctx := context.Background()
	app, _ := biometricApp(t, s, "slow")
	ch, err := app.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch.ExpiresIn != 1 {
		t.Errorf("expires_in = %d, want 1", ch.ExpiresIn)
	}
	a, err := app.Assertion(ch.Value, nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	before := head(t, s)
	if _, err := app.GrantBiometric(ctx, a); mobileclient.Code(err) != "challenge_invalid" {
		t.Fatalf("expired challenge: %v", err)
	}
	if head(t, s) != before {
		t.Fatal("the refusal moved the log")
	}

	// A revoked device: an assertion made before its removal is refused
	// like an unknown device's, and so is a challenge.
	ch, err = app.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a, err = app.Assertion(ch.Value, nil); err != nil {
		t.Fatal(err)
	}
	if err := app.RemoveDevice(ctx, passTok(t, app), app.DeviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := app.GrantBiometric(ctx, a); mobileclient.Code(err) != "device_unknown" {
		t.Fatalf("a revoked device's assertion: %v", err)
	}
	if _, err := app.Challenge(ctx); mobileclient.Code(err) != "device_unknown" {
		t.Fatalf("a revoked device's challenge: %v", err)
	}
}

func passTok(t *testing.T, app *mobileclient.Client) *mobileclient.Tokens {
	t.Helper()
	tok, err := app.SignIn(context.Background(), "123456")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func lock(t *testing.T, s *authdtest.Server, deviceID string) {
	t.Helper()
	token, _ := s.AdminToken(t, nil)
	r := s.Do(t, http.MethodPost, s.AdminURL+"/admin/v1/devices/"+deviceID+"/lock",
		http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}},
		`{"operator":"Olivia Operator","reason":"reported stolen"}`)
	if r.Status != http.StatusNoContent && r.Status != http.StatusOK {
		t.Fatalf("lock: %d %s", r.Status, r.Body)
	}
}

// rawGrant posts a biometric grant with extra parameters, proved by app's
// device key, to the server at s (the proof names the issuer's URL).
func rawGrant(t *testing.T, s *authdtest.Server, app *mobileclient.Client, assertion string, extra url.Values) *authdtest.Response {
	t.Helper()
	proof, err := dpop.NewProof(app.DeviceKey, http.MethodPost, app.Issuer+"/oauth2/token", s.Nonce(t), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {mobileclient.GrantBiometric}, "client_id": {"mobile-app"},
		"device_id": {app.DeviceID}, "assertion": {assertion}}
	for k, v := range extra {
		form[k] = v
	}
	return s.Form(t, s.PublicURL+"/oauth2/token", http.Header{"DPoP": {proof}}, form)
}

// TestBiometricChallengeIsUsedOnce: 100 token requests at once with one
// challenge, split across two replicas on one database, each with its own
// DPoP proof (and half of them with their own assertion, all valid): exactly
// one gets a token, every other is challenge_invalid, and the log holds one
// session and one consumption.
func TestBiometricChallengeIsUsedOnce(t *testing.T) {
	a := authdtest.Start(t, authdtest.Options{})
	b := authdtest.Start(t, authdtest.Options{DSN: a.DSN, Issuer: a.PublicURL})
	ctx := context.Background()
	app, _ := biometricApp(t, a, "racer")
	ch, err := app.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := app.Assertion(ch.Value, nil)
	if err != nil {
		t.Fatal(err)
	}
	nonce := a.Nonce(t)
	const n = 100
	type result struct {
		status int
		code   string
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv := a
			if i%2 == 1 {
				srv = b
			}
			assertion := shared
			if i%4 >= 2 {
				var err error
				if assertion, err = app.Assertion(ch.Value, nil); err != nil {
					t.Error(err)
					return
				}
			}
			proof, err := dpop.NewProof(app.DeviceKey, http.MethodPost, a.PublicURL+"/oauth2/token", nonce, "", time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			form := url.Values{"grant_type": {mobileclient.GrantBiometric}, "client_id": {"mobile-app"},
				"device_id": {app.DeviceID}, "assertion": {assertion}}
			req, _ := http.NewRequest(http.MethodPost, srv.PublicURL+"/oauth2/token", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("DPoP", proof)
			<-start
			resp, err := srv.Client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			code, _ := body["strongroom_error"].(string)
			results[i] = result{resp.StatusCode, code}
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, r := range results {
		switch {
		case r.status == http.StatusOK:
			ok++
		case r.status != http.StatusBadRequest || r.code != "challenge_invalid":
			t.Errorf("request %d: %d %q, want 200 or 400 challenge_invalid", i, r.status, r.code)
		}
	}
	if ok != 1 {
		t.Fatalf("%d requests got a token with one challenge, want exactly 1", ok)
	}
	evs, err := a.App.Store.ReadStream(ctx, ch.ID, 0)
	if err != nil || len(evs) != 2 || evs[1].Type != "challenge.consumed" {
		t.Fatalf("challenge stream: %d events, %v", len(evs), err)
	}
	started := 0
	for _, ev := range userEvents(t, a, "racer") {
		if ev["type"] == "session.started" && ev["data"].(map[string]any)["grant_type"] == mobileclient.GrantBiometric {
			started++
		}
	}
	if started != 1 {
		t.Fatalf("%d biometric sessions started, want 1", started)
	}
}

// TestChallengesAreRateLimitedPerDeviceKey: a device key that asks for
// challenges faster than the limit gets 429 with Retry-After and no
// challenge (nothing appended); another device is not affected.
func TestChallengesAreRateLimitedPerDeviceKey(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{ChallengesPerMinute: 6}) // a burst of 2
	ctx := context.Background()
	app, _ := biometricApp(t, s, "eager")
	other, _ := biometricApp(t, s, "patient")
	for i := range 2 {
		if _, err := app.Challenge(ctx); err != nil {
			t.Fatalf("challenge %d within the burst: %v", i, err)
		}
	}
	before := head(t, s)
	_, err := app.Challenge(ctx)
	var e *mobileclient.Error
	if !errorAs(err, &e) || e.Status != http.StatusTooManyRequests || e.Code != "rate_limited" || e.RetryAfter <= 0 {
		t.Fatalf("a challenge beyond the burst: %v", err)
	}
	if head(t, s) != before {
		t.Fatal("a refused challenge was appended")
	}
	if _, err := other.SignInBiometric(ctx, nil); err != nil {
		t.Fatalf("another device: %v", err)
	}
}

// TestBiometricInDevMode: dev mode's in-memory store keeps the same
// promises: a biometric sign-in and a confirmed payment work, and of 20
// concurrent grants with one challenge exactly one gets a token.
func TestBiometricInDevMode(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{Memory: true})
	ctx := context.Background()
	app, _ := biometricApp(t, s, "dev")
	tok, err := app.SignInBiometric(ctx, payment)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(claimsOf(t, tok.AccessToken)["authorization_details"], payment) || tok.RefreshToken != "" {
		t.Fatalf("payment token: %s, refresh %q", claimsOf(t, tok.AccessToken)["authorization_details"], tok.RefreshToken)
	}
	ch, err := app.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := app.Assertion(ch.Value, nil)
			if err != nil {
				t.Error(err)
				return
			}
			_, err = app.GrantBiometric(ctx, a)
			mu.Lock()
			codes[mobileclient.Code(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[""] != 1 || codes["challenge_invalid"] != 19 {
		t.Fatalf("outcomes %v, want one token and 19 challenge_invalid", codes)
	}
}
