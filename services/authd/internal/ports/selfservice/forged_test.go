package selfservice_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/mobileclient"
)

// TestForgedRefreshTokens: a refresh token carries its session id, which
// is no secret (it is in every access token). A token made up for a known
// session id — a random secret and tag, or another session's secret and
// tag — is refused like an unknown token: it decides nothing, so it cannot
// end the victim's session as reuse, not even when the victim's own
// device presents it; real tokens of the chain still count as reuse.
func TestForgedRefreshTokens(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	victim := enrolled(t, s, "vera", "314159")
	attacker := enrolled(t, s, "mallory", "271828")
	vt, err := victim.SignIn(ctx, "314159")
	if err != nil {
		t.Fatal(err)
	}
	at, err := attacker.SignIn(ctx, "271828")
	if err != nil {
		t.Fatal(err)
	}
	sid := sessionOf(t, s, vt.AccessToken)
	if !strings.HasPrefix(vt.RefreshToken, "srt_"+sid+".") || strings.Count(vt.RefreshToken, ".") != 2 {
		t.Fatalf("refresh token %q does not carry its session %s", vt.RefreshToken, sid)
	}
	random := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	vparts, aparts := strings.Split(vt.RefreshToken, "."), strings.Split(at.RefreshToken, ".")
	forged := map[string]string{
		"random secret and tag":               "srt_" + sid + "." + random(32) + "." + random(16),
		"the attacker's secret and tag":       "srt_" + sid + "." + aparts[1] + "." + aparts[2],
		"the victim's secret, a made-up tag":  vparts[0] + "." + vparts[1] + "." + random(16),
		"the victim's tag, a made-up secret":  vparts[0] + "." + random(32) + "." + vparts[2],
		"the old format (no session, no tag)": "srt_" + random(32),
		"truncated":                           vt.RefreshToken[:len(vt.RefreshToken)-1],
	}
	before, _ := s.App.Store.ReadStream(ctx, sid, 0)
	for name, tok := range forged {
		for who, app := range map[string]*mobileclient.Client{"attacker": attacker, "victim's device": victim} {
			if _, err := app.Refresh(ctx, tok); mobileclient.Code(err) != "invalid_grant" {
				t.Errorf("%s by the %s: %v, want invalid_grant", name, who, err)
			}
		}
		if err := phoneRevoke(t, s, victim, tok); err != nil {
			t.Fatal(err)
		}
	}
	after, _ := s.App.Store.ReadStream(ctx, sid, 0)
	if len(after) != len(before) || !introspectActive(t, s, vt.AccessToken) {
		t.Fatalf("forged tokens changed the victim's session: %d events, then %d", len(before), len(after))
	}
	// The real chain goes on, and an old real token is still reuse.
	next, err := victim.Refresh(ctx, vt.RefreshToken)
	if err != nil {
		t.Fatalf("the victim's refresh: %v", err)
	}
	if !strings.HasPrefix(next.RefreshToken, "srt_"+sid+".") {
		t.Fatalf("the successor %q left the session", next.RefreshToken)
	}
	// The refresh records its access token by the SHA-256 of its jti.
	evs, _ := s.App.Store.ReadStream(ctx, sid, 0)
	var refreshed struct {
		AccessTokenID string `json:"access_token_id"`
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(next.AccessToken, ".")[1])
	var claims struct {
		JTI string `json:"jti"`
	}
	if last := evs[len(evs)-1]; last.Type != "session.refreshed" || json.Unmarshal(last.Data, &refreshed) != nil ||
		json.Unmarshal(raw, &claims) != nil || claims.JTI == "" || refreshed.AccessTokenID != oauth.TokenID(claims.JTI) {
		t.Fatalf("session.refreshed records %q for jti %q", refreshed.AccessTokenID, claims.JTI)
	}
	if _, err := victim.Refresh(ctx, next.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := victim.Refresh(ctx, vt.RefreshToken); mobileclient.Code(err) != "refresh_token_reused" {
		t.Fatalf("an old real token: %v, want refresh_token_reused", err)
	}
	if introspectActive(t, s, next.AccessToken) || !introspectActive(t, s, at.AccessToken) {
		t.Fatal("reuse did not end exactly the victim's session")
	}
}
