package oauth_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func basic(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))}}
}

// jwks fetches and parses the server's JWKS.
func jwks(t *testing.T, s *authdtest.Server) jose.JSONWebKeySet {
	t.Helper()
	r := s.Do(t, http.MethodGet, s.PublicURL+"/.well-known/jwks.json", nil, "")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(r.Body, &set); err != nil || r.Status != 200 {
		t.Fatalf("jwks: %d %s", r.Status, r.Body)
	}
	return set
}

// verify checks an access token with go-jose against the JWKS, as any
// resource server would, and returns its header and claims.
func verify(t *testing.T, s *authdtest.Server, token string) (jose.Header, map[string]any) {
	t.Helper()
	parsed, err := josejwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse access token: %v", err)
	}
	h := parsed.Headers[0]
	set := jwks(t, s)
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the JWKS", h.KeyID)
	}
	var claims map[string]any
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("signature: %v", err)
	}
	return h, claims
}

func TestClientCredentialsToken(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	before := time.Now().Unix()
	token, resp := s.AdminToken(t, nil)
	if resp["token_type"] != "Bearer" || resp["expires_in"].(float64) < 290 || resp["expires_in"].(float64) > 300 {
		t.Errorf("token response %v", resp)
	}
	if _, ok := resp["refresh_token"]; ok {
		t.Error("client_credentials must not issue a refresh token")
	}
	h, c := verify(t, s, token)
	if h.ExtraHeaders["typ"] != "at+jwt" || h.Algorithm != "ES256" {
		t.Errorf("header %+v", h)
	}
	// The kid is the RFC 7638 thumbprint of the key.
	set := jwks(t, s)
	tp, _ := set.Keys[0].Thumbprint(crypto.SHA256)
	if h.KeyID != base64.RawURLEncoding.EncodeToString(tp) {
		t.Errorf("kid %s is not the key's thumbprint", h.KeyID)
	}
	aud, _ := c["aud"].([]any)
	if c["iss"] != s.PublicURL || c["sub"] != "back-office" || c["client_id"] != "back-office" ||
		len(aud) != 1 || aud[0] != s.PublicURL+"/admin" || c["scope"] != "strongroom:admin" ||
		c["sid"] == "" || c["jti"] == "" || c["cnf"] != nil {
		t.Errorf("claims %v", c)
	}
	if iat := int64(c["iat"].(float64)); iat < before-1 || int64(c["exp"].(float64))-iat != 300 {
		t.Errorf("iat %v exp %v", c["iat"], c["exp"])
	}
	// The grant started a session: one event on its own stream.
	evs, err := s.App.Store.ReadStream(context.Background(), c["sid"].(string), 0)
	if err != nil || len(evs) != 1 || evs[0].Type != "session.started" || evs[0].Metadata.Actor.ID != "back-office" {
		t.Fatalf("session stream: %+v, %v", evs, err)
	}
}

func TestWrongCredentialsAndRequests(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	tokenURL := s.PublicURL + "/oauth2/token"
	cc := url.Values{"grant_type": {"client_credentials"}}
	cases := []struct {
		name   string
		header http.Header
		body   string
		ctype  string
		status int
		code   string
	}{
		{"wrong secret", basic("back-office", "not-the-secret"), cc.Encode(), "", 401, "invalid_client"},
		{"unknown client", basic("nobody", "x"), cc.Encode(), "", 401, "invalid_client"},
		{"no credentials", nil, cc.Encode(), "", 400, "invalid_request"},
		{"public client", nil, "grant_type=client_credentials&client_id=mobile-app", "", 400, "invalid_grant"},
		{"scope not allowed", basic("back-office", s.AdminSecret), "grant_type=client_credentials&scope=other", "", 400, "invalid_scope"},
		{"resource not allowed", basic("back-office", s.AdminSecret), "grant_type=client_credentials&resource=https://evil.example", "", 400, "invalid_request"},
		{"audience parameter", basic("back-office", s.AdminSecret), "grant_type=client_credentials&audience=x", "", 400, "invalid_request"},
		{"unknown grant", basic("back-office", s.AdminSecret), "grant_type=password", "", 400, "unsupported_grant_type"},
		{"repeated parameter", basic("back-office", s.AdminSecret), "grant_type=client_credentials&grant_type=client_credentials", "", 400, "invalid_request"},
		{"json body", basic("back-office", s.AdminSecret), `{"grant_type":"client_credentials"}`, "application/json", 400, "invalid_request"},
		{"no content type", basic("back-office", s.AdminSecret), cc.Encode(), "-", 400, "invalid_request"},
		{"passcode without proof", nil, "grant_type=urn:strongroom:params:oauth:grant-type:passcode&client_id=mobile-app", "", 400, "invalid_dpop_proof"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			switch c.ctype {
			case "-":
				h.Del("Content-Type")
			case "":
			default:
				h.Set("Content-Type", c.ctype)
			}
			for k, v := range c.header {
				h[k] = v
			}
			r := s.Do(t, http.MethodPost, tokenURL, h, c.body)
			if r.Status != c.status || r.JSON(t)["error"] != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}
	// A query string carrying parameters is refused before anything else.
	r := s.Do(t, http.MethodPost, tokenURL+"?client_secret="+s.AdminSecret, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, cc.Encode())
	if r.Status != 400 {
		t.Fatalf("query parameters: %d", r.Status)
	}
	// An oversize body is refused by the listener.
	r = s.Do(t, http.MethodPost, tokenURL, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, "grant_type=client_credentials&x="+strings.Repeat("a", 200<<10))
	if r.Status != http.StatusRequestEntityTooLarge && r.Status != 400 {
		t.Fatalf("oversize body: %d", r.Status)
	}
	// None of this started a session (the inline read model is written in
	// the same transaction as any session.started).
	if docs, err := s.App.ReadModels.All(context.Background(), "sessions"); err != nil || len(docs) != 0 {
		t.Fatalf("failed requests started %d sessions (%v)", len(docs), err)
	}
}

// TestDiscoveryAndXOAuth2 obtains a back-office token the way a generic
// client library does: discovery, then client credentials.
func TestDiscoveryAndXOAuth2(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{Memory: true})
	r := s.Do(t, http.MethodGet, s.PublicURL+"/.well-known/oauth-authorization-server", nil, "")
	var meta map[string]any
	if err := json.Unmarshal(r.Body, &meta); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"issuer": s.PublicURL, "token_endpoint": s.PublicURL + "/oauth2/token",
		"revocation_endpoint": s.PublicURL + "/oauth2/revoke", "introspection_endpoint": s.AdminURL + "/oauth2/introspect",
		"jwks_uri": s.PublicURL + "/.well-known/jwks.json", "sealing_keys_uri": s.PublicURL + "/.well-known/sealing-keys.json",
	}
	for k, v := range want {
		if meta[k] != v {
			t.Errorf("%s = %v, want %s", k, meta[k], v)
		}
	}
	// No pin set is configured: none is announced or served.
	if _, ok := meta["pinset_uri"]; ok {
		t.Error("pinset_uri announced without a pin set")
	}
	for _, path := range []string{"/.well-known/pinset.json", "/.well-known/pinset/android.xml"} {
		if r := s.Do(t, http.MethodGet, s.PublicURL+path, nil, ""); r.Status != http.StatusNotFound {
			t.Errorf("%s without a pin set: %d", path, r.Status)
		}
	}
	if algs, _ := meta["dpop_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "ES256" {
		t.Errorf("dpop algs %v", meta["dpop_signing_alg_values_supported"])
	}
	cfg := clientcredentials.Config{ClientID: "back-office", ClientSecret: s.AdminSecret,
		TokenURL: meta["token_endpoint"].(string), Scopes: []string{"strongroom:admin"}, AuthStyle: oauth2.AuthStyleInHeader}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, s.Client)
	tok, err := cfg.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.Type() != "Bearer" {
		t.Fatalf("token %+v", tok)
	}
	verify(t, s, tok.AccessToken)
}

// aheadClock is the wall clock moved forward, as an end-to-end build's
// fast clock is after a while.
type aheadClock time.Duration

func (a aheadClock) Now() time.Time { return time.Now().Add(time.Duration(a)) }

// TestClientCredentialsExpiryFollowsAuthdsClock: fosite dates a
// client_credentials token's expiry by the wall clock; authd moves it to
// its own clock (as the device grants date theirs), keeping fosite's iat,
// which fosite checks against the wall clock. The token still works at
// the back office.
func TestClientCredentialsExpiryFollowsAuthdsClock(t *testing.T) {
	const ahead = time.Hour
	s := authdtest.Start(t, authdtest.Options{Memory: true, Clock: aheadClock(ahead)})
	token, _ := s.AdminToken(t, nil)
	c := payload(t, token)
	iat, exp := int64(c["iat"].(float64)), int64(c["exp"].(float64))
	if now := time.Now().Unix(); iat < now-5 || iat > now+1 {
		t.Errorf("iat %d is not the wall clock's %d", iat, now)
	}
	if want := time.Now().Add(ahead + 5*time.Minute).Unix(); exp < want-5 || exp > want+1 {
		t.Errorf("exp %d, want about %d (authd's clock + 5 min)", exp, want)
	}
	if m := introspect(t, s, token); m["active"] != true {
		t.Errorf("introspection: %v", m)
	}
}
