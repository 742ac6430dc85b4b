package selfservice_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/mobileclient"
)

// claimsOf decodes an access token's claims (the tests trust the server's
// signature; rsverify's tests check it).
func claimsOf(t *testing.T, token string) map[string]json.RawMessage {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func claimString(t *testing.T, c map[string]json.RawMessage, name string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(c[name], &s); err != nil {
		t.Fatalf("claim %s = %s: %v", name, c[name], err)
	}
	return s
}

// biometricApp is an enrolled app, signed in with its passcode, with a
// biometric key.
func biometricApp(t *testing.T, s *authdtest.Server, user string) (*mobileclient.Client, *mobileclient.Tokens) {
	t.Helper()
	app := enrolled(t, s, user, "123456")
	tok, err := app.SignIn(context.Background(), "123456")
	if err != nil {
		t.Fatalf("passcode sign-in: %v", err)
	}
	if err := app.EnrollBiometric(context.Background(), tok, nil); err != nil {
		t.Fatalf("enroll biometric key: %v", err)
	}
	return app, tok
}

// payment is what the user confirms in the journey.
var payment = json.RawMessage(`[{"type":"payment","amount":"249.90","currency":"EUR","creditor":{"name":"Müller & Söhne GmbH","iban":"DE89370400440532013000"},"reference":"Invoice 2026-117"}]`)

// TestBiometricJourney: passcode sign-in → enroll a biometric key →
// challenge → biometric grant → a token with acr biometric and cnf.jkt,
// refreshable; then a confirmed payment: a token carrying exactly the
// details the biometric key signed, and no refresh token; then the
// platform invalidates the key and the app enrolls a new one; then the
// user removes it. Each step's events are in the log.
func TestBiometricJourney(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()

	meta := s.Do(t, http.MethodGet, s.PublicURL+"/.well-known/oauth-authorization-server", nil, "").JSON(t)
	if meta["challenge_endpoint"] != s.PublicURL+"/v1/challenges" {
		t.Errorf("discovery challenge_endpoint = %v", meta["challenge_endpoint"])
	}
	if g, _ := json.Marshal(meta["grant_types_supported"]); !strings.Contains(string(g), mobileclient.GrantBiometric) {
		t.Errorf("discovery grant_types_supported = %s", g)
	}
	if d, _ := json.Marshal(meta["authorization_details_types_supported"]); string(d) != `["payment"]` {
		t.Errorf("discovery authorization_details_types_supported = %s", d)
	}

	app, passTok := biometricApp(t, s, "bea")
	passAuthTime := claimsOf(t, passTok.AccessToken)["auth_time"]

	time.Sleep(1100 * time.Millisecond) // so the biometric auth_time is a later second
	tok, err := app.SignInBiometric(ctx, nil)
	if err != nil {
		t.Fatalf("biometric sign-in: %v\n%s", err, s.Logs.String())
	}
	c := claimsOf(t, tok.AccessToken)
	if got := claimString(t, c, "acr"); got != "urn:strongroom:acr:biometric" {
		t.Errorf("acr = %s", got)
	}
	if string(c["amr"]) != `["user","swk"]` {
		t.Errorf("amr = %s", c["amr"])
	}
	var cnf struct {
		JKT string `json:"jkt"`
	}
	if err := json.Unmarshal(c["cnf"], &cnf); err != nil || cnf.JKT != app.KeyThumbprint() {
		t.Errorf("cnf = %s, want the device key %s", c["cnf"], app.KeyThumbprint())
	}
	if bytes.Equal(c["auth_time"], passAuthTime) {
		t.Errorf("auth_time %s is the passcode sign-in's: the biometric sign-in is a new authentication", c["auth_time"])
	}
	if _, ok := c["authorization_details"]; ok || tok.TokenType != "DPoP" || tok.RefreshToken == "" {
		t.Fatalf("a plain biometric sign-in: DPoP token with a refresh token and no details: %+v %s", tok, c["authorization_details"])
	}
	refreshed, err := app.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if rc := claimsOf(t, refreshed.AccessToken); claimString(t, rc, "acr") != "urn:strongroom:acr:biometric" ||
		!bytes.Equal(rc["auth_time"], c["auth_time"]) {
		t.Errorf("a refresh keeps acr and auth_time: %s %s", rc["acr"], rc["auth_time"])
	}
	if sessions, err := app.Sessions(ctx, refreshed); err != nil || len(sessions) != 2 {
		t.Fatalf("sessions: %+v %v", sessions, err)
	}

	// A confirmed payment.
	payTok, err := app.SignInBiometric(ctx, payment)
	if err != nil {
		t.Fatalf("payment confirmation: %v", err)
	}
	pc := claimsOf(t, payTok.AccessToken)
	if !jsonEqual(pc["authorization_details"], payment) {
		t.Errorf("the token's authorization_details\n%s\nare not exactly the confirmed\n%s", pc["authorization_details"], payment)
	}
	if payTok.RefreshToken != "" {
		t.Errorf("a token with authorization details came with a refresh token")
	}
	var exp, iat int64
	_ = json.Unmarshal(pc["exp"], &exp)
	_ = json.Unmarshal(pc["iat"], &iat)
	if exp-iat != 300 {
		t.Errorf("payment token lifetime %d s, want the access token's 300", exp-iat)
	}
	// A resource server that introspects (RFC 7662) learns what one that
	// verifies the JWT learns: the confirmed details exactly (RFC 9396
	// §9.2), the strength of the authentication and the key binding.
	in := s.Form(t, s.AdminURL+"/oauth2/introspect", basicAuth("back-office", s.AdminSecret), url.Values{"token": {payTok.AccessToken}})
	var im map[string]json.RawMessage
	if err := json.Unmarshal([]byte(in.Body), &im); err != nil || in.Status != 200 {
		t.Fatalf("introspection of the payment token: %d %s", in.Status, in.Body)
	}
	for _, claim := range []string{"authorization_details", "acr", "amr", "auth_time", "cnf", "sid"} {
		if !jsonEqual(im[claim], pc[claim]) {
			t.Errorf("introspection's %s = %s, the token's %s", claim, im[claim], pc[claim])
		}
	}
	// The confirmation's session ends with its token, and lists as such.
	if _, err := app.Sessions(ctx, payTok); err != nil {
		t.Fatalf("the payment token works on /v1: %v", err)
	}

	// The events: the key, and each challenge issued and consumed once,
	// the payment's with the digest of exactly what was confirmed.
	if n := countTypes(t, s, app.DeviceID); n["device.biometric_key_enrolled"] != 1 {
		t.Errorf("device events %v", n)
	}
	trail := userEvents(t, s, "bea")
	var issued, consumed []map[string]any
	for _, ev := range trail {
		switch ev["type"] {
		case "challenge.issued":
			issued = append(issued, ev)
		case "challenge.consumed":
			consumed = append(consumed, ev)
		}
	}
	if len(issued) != 2 || len(consumed) != 2 {
		t.Fatalf("challenge events: %d issued, %d consumed", len(issued), len(consumed))
	}
	data := consumed[1]["data"].(map[string]any)
	sum := sha256.Sum256(payment)
	if data["authorization_details_sha256"] != base64.RawURLEncoding.EncodeToString(sum[:]) ||
		data["session_id"] != claimString(t, pc, "sid") || data["key_jkt"] == "" {
		t.Errorf("challenge.consumed = %v", data)
	}
	if strings.Contains(string(mustJSON(t, trail)), "Müller") {
		t.Errorf("the audit trail holds the payment's details; only their digest belongs there")
	}

	// The platform invalidated the key (a new fingerprint): the app makes
	// a new one after a fresh passcode sign-in; the old key is refused.
	oldKey := app.BiometricKey
	fresh, err := app.SignIn(ctx, "123456")
	if err != nil {
		t.Fatal(err)
	}
	if err := app.EnrollBiometric(ctx, fresh, nil); err != nil {
		t.Fatalf("re-enroll: %v", err)
	}
	newKey := app.BiometricKey
	app.BiometricKey = oldKey
	if _, err := app.SignInBiometric(ctx, nil); mobileclient.Code(err) != "assertion_invalid" {
		t.Fatalf("an assertion by the replaced key: %v, want assertion_invalid", err)
	}
	app.BiometricKey = newKey
	if _, err := app.SignInBiometric(ctx, nil); err != nil {
		t.Fatalf("the new key: %v", err)
	}

	// Removal: no more challenges, and the key's assertions are refused.
	ch, err := app.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := app.Assertion(ch.Value, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.RemoveBiometric(ctx, fresh, ""); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := app.GrantBiometric(ctx, pending); mobileclient.Code(err) != "assertion_invalid" {
		t.Fatalf("an assertion by a removed key: %v, want assertion_invalid", err)
	}
	if _, err := app.Challenge(ctx); mobileclient.Code(err) != "biometric_key_missing" {
		t.Fatalf("a challenge without a biometric key: %v, want biometric_key_missing", err)
	}
	if n := countTypes(t, s, app.DeviceID); n["device.biometric_key_enrolled"] != 2 || n["device.biometric_key_removed"] != 1 {
		t.Errorf("device events %v", n)
	}
	dev := deviceDoc(t, s, app.DeviceID)
	if dev["has_biometric_key"] != false {
		t.Errorf("devices read model: %v", dev)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// userEvents reads a user's audit trail through the back office.
func userEvents(t *testing.T, s *authdtest.Server, user string) []map[string]any {
	t.Helper()
	token, _ := s.AdminToken(t, nil)
	var out []map[string]any
	cursor := ""
	for {
		r := s.Do(t, http.MethodGet, s.AdminURL+"/admin/v1/users/"+user+"/events?operator=Olivia+Operator&cursor="+cursor,
			http.Header{"Authorization": {"Bearer " + token}}, "")
		if r.Status != http.StatusOK {
			t.Fatalf("audit trail: %d %s", r.Status, r.Body)
		}
		var page struct {
			Events     []map[string]any `json:"events"`
			NextCursor string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Events...)
		if page.NextCursor == "" || len(page.Events) == 0 {
			return out
		}
		cursor = page.NextCursor
	}
}

// deviceDoc waits for the devices read model to show the device's last
// event, and returns its document.
func deviceDoc(t *testing.T, s *authdtest.Server, deviceID string) map[string]any {
	t.Helper()
	evs, err := s.App.Store.ReadStream(context.Background(), deviceID, 0)
	if err != nil || len(evs) == 0 {
		t.Fatal(err)
	}
	last := evs[len(evs)-1].Version
	deadline := time.Now().Add(10 * time.Second)
	for {
		doc, ok, err := s.App.ReadModels.Get(context.Background(), "devices", deviceID)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if ok {
			_ = json.Unmarshal(doc.Data, &m)
			if v, _ := m["version"].(float64); int64(v) >= last {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("devices read model never reached version %d: %v", last, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
