package selfservice_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/sealing"
	"strongroom.dev/services/authd/mobileclient"
	"strongroom.dev/services/dpop"
)

// logLength is the number of events in the whole log (settled).
func sessionsAndDevices(t *testing.T, s *authdtest.Server, user string) (devices int) {
	t.Helper()
	evs, err := s.App.Store.ReadStream(context.Background(), "user-"+user, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		switch ev.Type {
		case "user.device_added":
			devices++
		case "user.device_removed":
			devices--
		}
	}
	return devices
}

// TestActivationCodesAnswerAlike: reused, expired-like (unknown), wrong
// purpose and malformed codes all get one identical answer, and change
// nothing.
func TestActivationCodesAnswerAlike(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	used := s.ActivationCode(t, "dave", "enroll")
	first, _ := mobileclient.New(s.PublicURL, s.Client)
	if err := first.Enroll(ctx, used, "Phone", "android"); err != nil {
		t.Fatal(err)
	}
	reset := s.ActivationCode(t, "dave", "reset")
	cases := map[string]string{
		"reused":                   used,
		"wrong purpose":            reset,
		"unknown":                  strings.Repeat("A", 32),
		"malformed":                "not-a-code!",
		"empty":                    "",
		"huge":                     strings.Repeat("B", 5000),
		"lowercase of a used code": strings.ToLower(used),
	}
	var answers []string
	for name, code := range cases {
		app, _ := mobileclient.New(s.PublicURL, s.Client)
		err := app.Enroll(ctx, code, "Phone", "android")
		if mobileclient.Code(err) != "activation_code_invalid" {
			t.Errorf("%s: %v", name, err)
		}
		answers = append(answers, err.Error())
	}
	for _, a := range answers[1:] {
		if a != answers[0] {
			t.Errorf("answers differ: %q vs %q", a, answers[0])
		}
	}
	if n := sessionsAndDevices(t, s, "dave"); n != 1 {
		t.Fatalf("dave has %d devices, want 1", n)
	}
	// The reset code was not consumed by the wrong-purpose attempt.
	if err := first.SetPasscode(ctx, "121212", ""); err != nil {
		t.Fatal(err)
	}
	if err := first.SetPasscode(ctx, "343434", reset); err != nil {
		t.Fatalf("the reset code is still good: %v", err)
	}
}

func TestSixthDeviceIsRefused(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{Memory: true})
	ctx := context.Background()
	for i := range 5 {
		app, _ := mobileclient.New(s.PublicURL, s.Client)
		if err := app.Enroll(ctx, s.ActivationCode(t, "erin", "enroll"), "Phone", "ios"); err != nil {
			t.Fatalf("device %d: %v", i+1, err)
		}
	}
	code := s.ActivationCode(t, "erin", "enroll")
	app, _ := mobileclient.New(s.PublicURL, s.Client)
	if err := app.Enroll(ctx, code, "Phone", "ios"); mobileclient.Code(err) != "too_many_devices" {
		t.Fatalf("6th device: %v", err)
	}
	if n := sessionsAndDevices(t, s, "erin"); n != 5 {
		t.Fatalf("erin has %d devices", n)
	}
}

// TestHostileSealsAndParameters: tampered, truncated, replayed (another
// request's jti) and unknown-key seals, and junk in every parameter, are
// each a 4xx with the contract's code, and never count as an attempt.
func TestHostileSealsAndParameters(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "frank", "424242")
	var keys struct {
		Keys []sealing.PublicEntry `json:"keys"`
	}
	r := s.Do(t, http.MethodGet, s.PublicURL+"/.well-known/sealing-keys.json", nil, "")
	if err := json.Unmarshal(r.Body, &keys); err != nil || len(keys.Keys) == 0 || keys.Keys[0].KEMID != 0x647a {
		t.Fatalf("sealing keys: %s", r.Body)
	}
	key := keys.Keys[0]
	tokenURL := s.PublicURL + "/oauth2/token"

	// grant sends a passcode grant with the given seal, made for the
	// proof's jti unless otherwise told.
	grant := func(mutate func(sealed, jti string) (string, string)) *authdtest.Response {
		proof, err := dpop.NewProof(app.DeviceKey, "POST", tokenURL, s.Nonce(t), "", nowish())
		if err != nil {
			t.Fatal(err)
		}
		jti := jtiOf(t, proof)
		sealed, err := app.SealPasscode(key, "000000", jti)
		if err != nil {
			t.Fatal(err)
		}
		sealed, kid := mutate(sealed, jti)
		return s.Form(t, tokenURL, http.Header{"DPoP": {proof}}, map[string][]string{
			"grant_type": {mobileclient.GrantPasscode}, "client_id": {"mobile-app"}, "device_id": {app.DeviceID},
			"passcode_sealed": {sealed}, "sealing_kid": {kid}})
	}
	flip := func(s string, i int) string {
		b, _ := base64.RawURLEncoding.DecodeString(s)
		b[i%len(b)] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	otherJTI, _ := app.SealPasscode(key, "000000", "another-request")
	cases := []struct {
		name   string
		mutate func(string, string) (string, string)
		code   string
	}{
		{"tampered enc", func(s, _ string) (string, string) { return flip(s, 5), key.KID }, "seal_invalid"},
		{"tampered ciphertext", func(s, _ string) (string, string) { return flip(s, 1200), key.KID }, "seal_invalid"},
		{"tampered tag", func(s, _ string) (string, string) { return flip(s, -1+len(s)*3/4), key.KID }, "seal_invalid"},
		{"truncated", func(s, _ string) (string, string) { return s[:len(s)/2], key.KID }, "seal_invalid"},
		{"empty", func(string, string) (string, string) { return "", key.KID }, "seal_invalid"},
		{"not base64", func(string, string) (string, string) { return "!!!", key.KID }, "seal_invalid"},
		{"replayed from another request", func(string, string) (string, string) { return otherJTI, key.KID }, "seal_invalid"},
		{"unknown sealing kid", func(s, _ string) (string, string) { return s, "no-such-kid" }, "sealing_kid_unknown"},
		{"huge", func(string, string) (string, string) { return strings.Repeat("A", 60000), key.KID }, "seal_invalid"},
	}
	before := countTypes(t, s, app.DeviceID)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := grant(c.mutate)
			if r.Status != 400 || r.JSON(t)["strongroom_error"] != c.code {
				t.Fatalf("got %d %s, want 400 %s", r.Status, r.Body, c.code)
			}
		})
	}
	// A bad one-time response key is refused before any grant logic.
	for name, rk := range map[string]string{
		"not json": "{", "unknown field": `{"kem_id":25722,"kdf_id":1,"aead_id":2,"public_key":"AA","x":1}`,
		"x25519 not offered": `{"kem_id":32,"kdf_id":1,"aead_id":2,"public_key":"` + strings.Repeat("A", 43) + `"}`,
	} {
		proof, _ := dpop.NewProof(app.DeviceKey, "POST", tokenURL, s.Nonce(t), "", nowish())
		sealed, _ := app.SealPasscode(key, "424242", jtiOf(t, proof))
		r := s.Form(t, tokenURL, http.Header{"DPoP": {proof}}, map[string][]string{
			"grant_type": {mobileclient.GrantPasscode}, "client_id": {"mobile-app"}, "device_id": {app.DeviceID},
			"passcode_sealed": {sealed}, "sealing_kid": {key.KID}, "response_sealing_key": {rk}})
		if r.Status != 400 || r.JSON(t)["error"] != "invalid_request" {
			t.Errorf("response key %s: %d %s", name, r.Status, r.Body)
		}
	}
	// The same for setting the passcode.
	put := func(body string) *authdtest.Response {
		u := s.PublicURL + "/v1/devices/" + app.DeviceID + "/passcode"
		proof, _ := dpop.NewProof(app.DeviceKey, "PUT", u, "", "", nowish())
		return s.Do(t, http.MethodPut, u, http.Header{"DPoP": {proof}, "Content-Type": {"application/json"}}, body)
	}
	junk := map[string]struct {
		body   string
		status int
	}{
		"unknown field":      {`{"passcode_sealed":"x","sealing_kid":"k","extra":1}`, 400},
		"not an object":      {`[]`, 400},
		"wrong types":        {`{"passcode_sealed":1,"sealing_kid":true}`, 400},
		"trailing data":      {`{"passcode_sealed":"x","sealing_kid":"k"} {}`, 400},
		"bad seal":           {`{"passcode_sealed":"x","sealing_kid":"` + key.KID + `"}`, 400},
		"without reset code": {`{"passcode_sealed":"x","sealing_kid":"` + key.KID + `","activation_code":"` + strings.Repeat("C", 32) + `"}`, 400},
	}
	for name, c := range junk {
		if r := put(c.body); r.Status != c.status || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	after := countTypes(t, s, app.DeviceID)
	for typ, n := range after {
		if before[typ] != n {
			t.Fatalf("hostile requests changed the device: %v → %v", before, after)
		}
	}
	if _, err := app.SignIn(ctx, "424242"); err != nil {
		t.Fatalf("the device still signs in: %v", err)
	}
}

func jtiOf(t *testing.T, proof string) string {
	t.Helper()
	parts := strings.Split(proof, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.JTI
}

func nowish() time.Time { return time.Now() }

// TestCodeAttemptsAreRateLimited: guessing codes from one address hits
// the per-address limit and is refused before any code is looked at.
func TestCodeAttemptsAreRateLimited(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{Memory: true, CodeAttemptsPerIP: 20})
	ctx := context.Background()
	limited := 0
	for range 12 {
		app, _ := mobileclient.New(s.PublicURL, s.Client)
		if err := app.Enroll(ctx, strings.Repeat("D", 32), "Phone", "ios"); mobileclient.Code(err) == "rate_limited" {
			limited++
		}
	}
	// Burst 5, refilled at 20/min: the last several of 12 quick tries fail.
	if limited < 5 {
		t.Fatalf("%d of 12 guesses were rate limited", limited)
	}
}

// TestCodeLimitsBehindABalancer: behind a load balancer sending the PROXY
// protocol (TLS passthrough), the per-address limit and the audit trail
// see each client's own address, not the balancer's: one client guessing
// codes does not lock out another, and a connection that bypasses the
// balancer is not served.
func TestCodeLimitsBehindABalancer(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{CodeAttemptsPerIP: 20, ProxyProtocolFrom: []string{"127.0.0.1"}})
	ctx := context.Background()
	guesser := s.BalancerClient(t, "203.0.113.10:51000")
	limited := 0
	for range 12 {
		app, _ := mobileclient.New(s.PublicURL, guesser)
		if err := app.Enroll(ctx, strings.Repeat("D", 32), "Phone", "ios"); mobileclient.Code(err) == "rate_limited" {
			limited++
		}
	}
	if limited < 5 {
		t.Fatalf("%d of 12 guesses from one client were rate limited", limited)
	}
	// Another customer behind the same balancer enrolls at once, and the
	// log records their address.
	app, _ := mobileclient.New(s.PublicURL, s.BalancerClient(t, "[2001:db8::7]:443"))
	if err := app.Enroll(ctx, s.ActivationCode(t, "ivy", "enroll"), "Phone", "ios"); err != nil {
		t.Fatalf("another client behind the balancer: %v", err)
	}
	evs, err := s.App.Store.ReadStream(ctx, app.DeviceID, 0)
	if err != nil || len(evs) == 0 || evs[0].Personal == nil || evs[0].Personal.IP != "2001:db8::7" {
		t.Fatalf("the enrolment's recorded IP: %+v, %v", evs, err)
	}
	// Straight to authd, without the header: dropped.
	direct, _ := mobileclient.New(s.PublicURL, s.DirectClient())
	if err := direct.Enroll(ctx, s.ActivationCode(t, "ivy", "enroll"), "Phone", "ios"); err == nil || mobileclient.Code(err) != "" {
		t.Fatalf("a connection bypassing the balancer: %v", err)
	}
}

// TestDeviceWithoutPasscodeIsRevoked: a device that sets no passcode in
// time is revoked (its slot freed), and cannot set one late.
func TestDeviceWithoutPasscodeIsRevoked(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	late, _ := mobileclient.New(s.PublicURL, s.Client)
	if err := late.Enroll(ctx, s.ActivationCode(t, "hank", "enroll"), "Phone", "ios"); err != nil {
		t.Fatal(err)
	}
	s.App.Devices.Policy.PasscodeDeadline = time.Millisecond
	time.Sleep(5 * time.Millisecond)
	// The sweeper reads the devices read model: wait until it has the device.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := s.App.Devices.RevokeUnfinished(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the unfinished device was never revoked")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := late.SetPasscode(ctx, "111222", ""); mobileclient.Code(err) != "device_unknown" {
		t.Fatalf("late passcode: %v", err)
	}
	if n := sessionsAndDevices(t, s, "hank"); n != 0 {
		t.Fatalf("hank still has %d devices", n)
	}
	if n, _ := s.App.Devices.RevokeUnfinished(ctx); n != 0 {
		t.Fatalf("revoked again: %d", n)
	}
}

// TestResetNeverLiftsABackOfficeLock: the back office locks a device (and
// its sessions end); a reset code sets a new passcode but the lock stays.
func TestResetNeverLiftsABackOfficeLock(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "ivy", "777888")
	tok, err := app.SignIn(ctx, "777888")
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := s.AdminToken(t, nil)
	r := s.Do(t, http.MethodPost, s.AdminURL+"/admin/v1/devices/"+app.DeviceID+"/lock",
		http.Header{"Authorization": {"Bearer " + admin}, "Content-Type": {"application/json"}},
		`{"operator":"Olivia Operator","reason":"reported stolen"}`)
	if r.Status != http.StatusNoContent {
		t.Fatalf("lock: %d %s", r.Status, r.Body)
	}
	if _, err := app.Sessions(ctx, tok); mobileclient.Code(err) != "invalid_token" {
		t.Fatalf("the lock must end the device's sessions: %v", err)
	}
	if err := app.SetPasscode(ctx, "999000", s.ActivationCode(t, "ivy", "reset")); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if _, err := app.SignIn(ctx, "999000"); mobileclient.Code(err) != "device_locked" {
		t.Fatalf("after the reset: %v, want device_locked", err)
	}
	if r := s.Do(t, http.MethodPost, s.AdminURL+"/admin/v1/devices/no-such-device/lock",
		http.Header{"Authorization": {"Bearer " + admin}, "Content-Type": {"application/json"}},
		`{"operator":"Olivia Operator"}`); r.Status != http.StatusNotFound {
		t.Fatalf("unknown device: %d", r.Status)
	}
}
