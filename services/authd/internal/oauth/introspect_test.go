package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	fjwt "github.com/ory/fosite/token/jwt"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/oauth"
)

// payload returns a token's claims, unverified.
func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// withPayload replaces a token's payload and keeps its header and
// signature.
func withPayload(t *testing.T, token string, edit func(map[string]any)) string {
	t.Helper()
	c := payload(t, token)
	edit(c)
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(raw) + "." + parts[2]
}

// TestIntrospectionAnswers: introspection finds a token's session by the
// sid it carries and takes iat and exp from it, so it answers from the
// token only when its signature verifies; everything else is
// active:false.
func TestIntrospectionAnswers(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	d := authdtest.NewDevice(t)
	good, _ := s.AdminToken(t, d)
	victim, _ := s.AdminToken(t, nil)
	revoked, _ := s.AdminToken(t, nil)
	gc, vc := payload(t, good), payload(t, victim)
	if err := s.App.OAuth.Storage.RevokeSession(ctx, payload(t, revoked)["sid"].(string), "test", "tester"); err != nil {
		t.Fatal(err)
	}

	// The audit trail records the token by the SHA-256 of its jti.
	evs, err := s.App.Store.ReadStream(ctx, gc["sid"].(string), 0)
	var started struct {
		AccessTokenID string `json:"access_token_id"`
	}
	if err != nil || len(evs) != 1 || json.Unmarshal(evs[0].Data, &started) != nil ||
		started.AccessTokenID != oauth.TokenID(gc["jti"].(string)) {
		t.Fatalf("session.started records %q, want TokenID(jti) %q (%v)", started.AccessTokenID, oauth.TokenID(gc["jti"].(string)), err)
	}

	m := introspect(t, s, good)
	aud, _ := m["aud"].([]any)
	cnf, _ := m["cnf"].(map[string]any)
	if m["active"] != true || m["sid"] != gc["sid"] || m["client_id"] != "back-office" || m["sub"] != "back-office" ||
		m["scope"] != "strongroom:admin" || m["exp"] != gc["exp"] || m["iat"] != gc["iat"] ||
		len(aud) != 1 || aud[0] != s.PublicURL+"/admin" || cnf["jkt"] != d.JKT {
		t.Fatalf("introspection of a good token: %v (claims %v)", m, gc)
	}

	// sign signs claims with the server's own key (what a leaked signing
	// key could do; here: tokens authd might have issued).
	sign := func(signer *oauth.Signer, edit func(map[string]any)) string {
		c := fjwt.MapClaims{}
		for k, v := range gc {
			c[k] = v
		}
		c["jti"] = uuid.NewString()
		edit(c)
		tok, _, err := signer.Generate(ctx, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	own := s.App.OAuth.Signer
	serverKey, err := s.App.OAuth.Keys.Active()
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := keys.Generate()
	otherSrc, _ := keys.NewStatic(otherKey)
	// The other key claims the server key's kid: only the signature check
	// tells them apart.
	impostor := *otherKey
	impostor.KID = serverKey.KID
	impostorSrc, _ := keys.NewStatic(&impostor)
	now := time.Now()

	cases := []struct{ name, token string }{
		{"garbage", "nonsense"},
		{"empty", ""},
		{"three dots of nothing", ".."},
		{"JWT-shaped garbage", "a.b.c"},
		{"sid changed to another live session", withPayload(t, good, func(c map[string]any) { c["sid"] = vc["sid"] })},
		{"sid changed to an unknown session", withPayload(t, good, func(c map[string]any) { c["sid"] = uuid.NewString() })},
		{"exp pushed into the future", withPayload(t, good, func(c map[string]any) { c["exp"] = now.Add(time.Hour).Unix() })},
		{"jti changed", withPayload(t, good, func(c map[string]any) { c["jti"] = uuid.NewString() })},
		{"authorization_details slipped in", withPayload(t, good, func(c map[string]any) { c["authorization_details"] = []any{map[string]any{"type": "payment"}} })},
		{"signature of another token", strings.Join(strings.Split(good, ".")[:2], ".") + "." + strings.Split(victim, ".")[2]},
		{"alg none", base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + strings.Split(good, ".")[1] + "."},
		{"expired, signed by authd", sign(own, func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-time.Hour).Unix(), now.Add(-time.Minute).Unix()
		})},
		{"session gone, signed by authd", sign(own, func(c map[string]any) { c["sid"] = uuid.NewString() })},
		{"no sid, signed by authd", sign(own, func(c map[string]any) { delete(c, "sid") })},
		{"signed by an unpublished key", sign(&oauth.Signer{Keys: otherSrc}, func(map[string]any) {})},
		{"signed by another key under authd's kid", sign(&oauth.Signer{Keys: impostorSrc}, func(map[string]any) {})},
		{"token of a revoked session", revoked},
		{"a refresh-token-shaped string", "srt_" + gc["sid"].(string) + "." + strings.Repeat("A", 43) + "." + strings.Repeat("A", 22)},
	}
	for _, c := range cases {
		if m := introspect(t, s, c.token); m["active"] != false || len(m) != 1 {
			t.Errorf("%s: %v", c.name, m)
		}
	}
	// A token authd signs for a live session is good, with its own times.
	fresh := sign(own, func(c map[string]any) { c["iat"], c["exp"] = now.Unix(), now.Add(time.Minute).Unix() })
	if m := introspect(t, s, fresh); m["active"] != true || m["exp"] != float64(now.Add(time.Minute).Unix()) || m["iat"] != float64(now.Unix()) {
		t.Fatalf("a token signed by authd: %v", m)
	}
	if _, ok := introspect(t, s, fresh)["authorization_details"]; ok {
		t.Fatal("authorization_details answered for a token without them")
	}
	// Details are answered as the signed token carries them (RFC 9396 §9.2).
	details := []any{map[string]any{"type": "payment", "amount": "12.00", "currency": "EUR"}}
	paid := sign(own, func(c map[string]any) {
		c["iat"], c["exp"] = now.Unix(), now.Add(time.Minute).Unix()
		c["authorization_details"] = details
	})
	if m := introspect(t, s, paid); m["active"] != true || !reflect.DeepEqual(m["authorization_details"], details) {
		t.Fatalf("a token with authorization_details: %v", m)
	}
	// None of this touched the sessions it named.
	if introspect(t, s, good)["active"] != true || introspect(t, s, victim)["active"] != true {
		t.Fatal("a refused token changed a session")
	}
}

// TestRevocationActsOnlyOnVerifiedTokens: a token whose payload names a
// session, but whose signature does not verify, revokes nothing.
func TestRevocationActsOnlyOnVerifiedTokens(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{Memory: true})
	victim, _ := s.AdminToken(t, nil)
	attacker, _ := s.AdminToken(t, nil)
	vc := payload(t, victim)
	revokeURL := s.PublicURL + "/oauth2/revoke"
	for name, tok := range map[string]string{
		"attacker's token with the victim's sid": withPayload(t, attacker, func(c map[string]any) { c["sid"] = vc["sid"] }),
		"victim's payload, attacker's signature": strings.Join(strings.Split(victim, ".")[:2], ".") + "." + strings.Split(attacker, ".")[2],
		"victim's payload, no signature":         strings.Join(strings.Split(victim, ".")[:2], ".") + ".",
		"victim's sid as the whole token":        vc["sid"].(string),
	} {
		for _, hint := range []string{"", "access_token", "refresh_token"} {
			form := map[string][]string{"token": {tok}}
			if hint != "" {
				form["token_type_hint"] = []string{hint}
			}
			if r := s.Form(t, revokeURL, basic("back-office", s.AdminSecret), form); r.Status != 200 {
				t.Fatalf("%s: %d %s", name, r.Status, r.Body)
			}
		}
		if introspect(t, s, victim)["active"] != true {
			t.Fatalf("%s revoked the victim's session", name)
		}
	}
	if r := s.Form(t, revokeURL, basic("back-office", s.AdminSecret), map[string][]string{"token": {victim}}); r.Status != 200 {
		t.Fatalf("revoke: %d", r.Status)
	}
	if introspect(t, s, victim)["active"] != false || introspect(t, s, attacker)["active"] != true {
		t.Fatal("the real token did not revoke exactly its session")
	}
}
