package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/rsverify"
)

func introspect(t *testing.T, s *authdtest.Server, token string) map[string]any {
	t.Helper()
	r := s.Form(t, s.AdminURL+"/oauth2/introspect", basic("back-office", s.AdminSecret), url.Values{"token": {token}})
	if r.Status != 200 {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)
}

// TestRevokingASessionDeactivatesAllItsTokens covers the three ways a
// session ends in this issue — RFC 7009 revocation, the back office — and
// that introspection and the back office obey it at once.
func TestRevokingASessionDeactivatesAllItsTokens(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	d := authdtest.NewDevice(t)
	token, _ := s.AdminToken(t, d)
	m := introspect(t, s, token)
	cnf, _ := m["cnf"].(map[string]any)
	if m["active"] != true || m["client_id"] != "back-office" || m["sub"] != "back-office" ||
		m["scope"] != "strongroom:admin" || cnf["jkt"] != d.JKT || m["sid"] == nil {
		t.Fatalf("introspection of a live token: %v", m)
	}
	revokeURL := s.PublicURL + "/oauth2/revoke"
	form := url.Values{"token": {token}}

	// Without a proof by the token's key nothing is revoked (RFC 7009
	// still answers 200).
	if r := s.Form(t, revokeURL, basic("back-office", s.AdminSecret), form); r.Status != 200 {
		t.Fatalf("revoke without proof: %d %s", r.Status, r.Body)
	}
	if introspect(t, s, token)["active"] != true {
		t.Fatal("a token was revoked without a proof of its key")
	}
	h := basic("back-office", s.AdminSecret)
	h.Set("DPoP", d.Proof(t, "POST", revokeURL, "", ""))
	if r := s.Form(t, revokeURL, h, form); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if m := introspect(t, s, token); m["active"] != false || len(m) != 1 {
		t.Fatalf("introspection after revocation: %v", m)
	}
	u := s.AdminURL + "/admin/v1/users/alice/events"
	r := s.Do(t, http.MethodGet, u+"?operator=alice", http.Header{"Authorization": {"DPoP " + token}, "DPoP": {d.Proof(t, "GET", u, "", token)}}, "")
	if r.Status != 401 {
		t.Fatalf("back office with a revoked token: %d", r.Status)
	}
	// The app (a public client) revokes only with a DPoP proof.
	if r := s.Form(t, revokeURL, nil, url.Values{"token": {"anything"}, "client_id": {"mobile-app"}}); r.Status != 400 || r.JSON(t)["error"] != "invalid_dpop_proof" {
		t.Fatalf("public client without proof: %d %s", r.Status, r.Body)
	}
	// Revoking again, or an unknown token, is fine (RFC 7009 §2.2).
	h.Set("DPoP", d.Proof(t, "POST", revokeURL, "", ""))
	if r := s.Form(t, revokeURL, h, form); r.Status != 200 {
		t.Fatalf("second revocation: %d", r.Status)
	}
	if r := s.Form(t, revokeURL, basic("back-office", s.AdminSecret), url.Values{"token": {"nonsense"}}); r.Status != 200 {
		t.Fatalf("unknown token: %d", r.Status)
	}

	// The back office ends another session; the operator is the actor.
	victim, _ := s.AdminToken(t, nil)
	admin, _ := s.AdminToken(t, nil)
	vm := introspect(t, s, victim)
	sid := vm["sid"].(string)
	revoke := func(sid, body string) *authdtest.Response {
		return s.Do(t, http.MethodPost, s.AdminURL+"/admin/v1/sessions/"+sid+"/revoke",
			http.Header{"Authorization": {"Bearer " + admin}, "Content-Type": {"application/json"}}, body)
	}
	for _, bad := range []string{`{}`, `{"operator":""}`, `{"operator":"a\nb"}`, `{"operator":"alice","extra":1}`, `not json`, `{"operator":"alice"} {}`} {
		if r := revoke(sid, bad); r.Status != 400 {
			t.Errorf("body %q: %d", bad, r.Status)
		}
	}
	if r := revoke("no-such-session", `{"operator":"alice","reason":"x"}`); r.Status != 404 {
		t.Fatalf("unknown session: %d", r.Status)
	}
	if introspect(t, s, victim)["active"] != true {
		t.Fatal("bad requests changed the session")
	}
	if r := revoke(sid, `{"operator":"Alice Operator","reason":"phone stolen"}`); r.Status != 204 {
		t.Fatalf("back-office revocation: %d %s", r.Status, r.Body)
	}
	if introspect(t, s, victim)["active"] != false {
		t.Fatal("token of a session the back office revoked is still active")
	}
	evs, _ := s.App.Store.ReadStream(context.Background(), sid, 0)
	last := evs[len(evs)-1]
	if last.Type != "session.revoked" || last.Metadata.Actor != (eventstore.Actor{Kind: "operator", ID: "Alice Operator"}) {
		t.Fatalf("revocation event %s by %+v", last.Type, last.Metadata.Actor)
	}
}

func TestIntrospectionNeedsClientAuthentication(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{Memory: true})
	token, _ := s.AdminToken(t, nil)
	for name, h := range map[string]http.Header{
		"none":         nil,
		"wrong secret": basic("back-office", "wrong"),
		"public":       basic("mobile-app", ""),
	} {
		r := s.Form(t, s.AdminURL+"/oauth2/introspect", h, url.Values{"token": {token}})
		if r.Status < 400 || r.Status >= 500 || strings.Contains(string(r.Body), `"active":true`) {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	// Introspection is not on the public listener.
	if r := s.Form(t, s.PublicURL+"/oauth2/introspect", basic("back-office", s.AdminSecret), url.Values{"token": {token}}); r.Status != 404 {
		t.Errorf("public introspection: %d", r.Status)
	}
}

// TestResourceServerPackage: the package a bank's API imports accepts a
// DPoP-bound token authd issued, and refuses it presented by another key.
func TestResourceServerPackage(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{Memory: true})
	d, other := authdtest.NewDevice(t), authdtest.NewDevice(t)
	token, _ := s.AdminToken(t, d)
	v, err := rsverify.New(context.Background(), rsverify.Config{
		Issuer: s.PublicURL, Audience: s.PublicURL + "/admin", HTTPClient: s.Client,
		ExternalURL: func(r *http.Request) string { return "https://api.bank.test" + r.URL.Path },
	})
	if err != nil {
		t.Fatal(err)
	}
	call := func(key *authdtest.Device, tok string) (*rsverify.Token, error) {
		req := httptest.NewRequest(http.MethodGet, "https://api.bank.test/payments", nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", key.Proof(t, "GET", "https://api.bank.test/payments", "", tok))
		return v.Verify(req)
	}
	got, err := call(d, token)
	if err != nil || got.ClientID != "back-office" || got.JKT != d.JKT || !got.HasScope("strongroom:admin") {
		t.Fatalf("good call: %+v, %v", got, err)
	}
	if _, err := call(other, token); err == nil {
		t.Fatal("a proof by another key was accepted")
	}
}

// TestNoSecretLeaks runs the flows of this issue, then searches everything
// authd wrote — logs, spans, events, responses — for the secrets it handled.
func TestNoSecretLeaks(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	d := authdtest.NewDevice(t)
	token, _ := s.AdminToken(t, d)
	bearer, _ := s.AdminToken(t, nil)
	var responses strings.Builder
	record := func(r *authdtest.Response) { responses.Write(r.Body); responses.WriteString("\n") }
	record(s.Form(t, s.PublicURL+"/oauth2/token", basic("back-office", "guess-"+s.AdminSecret[:8]), url.Values{"grant_type": {"client_credentials"}}))
	record(s.Form(t, s.AdminURL+"/oauth2/introspect", basic("back-office", s.AdminSecret), url.Values{"token": {token}}))
	u := s.AdminURL + "/admin/v1/users/alice/events"
	record(s.Do(t, http.MethodGet, u+"?operator=alice", http.Header{"Authorization": {"Bearer " + token}}, ""))
	record(s.Do(t, http.MethodGet, u+"?operator=alice", http.Header{"Authorization": {"Bearer " + bearer + "x"}}, ""))
	h := basic("back-office", s.AdminSecret)
	h.Set("DPoP", d.Proof(t, "POST", s.PublicURL+"/oauth2/revoke", "", ""))
	record(s.Form(t, s.PublicURL+"/oauth2/revoke", h, url.Values{"token": {token}}))

	var everything strings.Builder
	everything.WriteString(s.Logs.String())
	everything.WriteString(responses.String())
	for _, span := range s.Spans.GetSpans() {
		b, _ := json.Marshal(span.Attributes)
		everything.Write(b)
		everything.WriteString(span.Name)
		for _, ev := range span.Events {
			b, _ := json.Marshal(ev.Attributes)
			everything.Write(b)
		}
	}
	evs, err := s.App.Store.ReadStream(context.Background(), introspectSID(t, s, bearer), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		everything.Write(b)
	}
	if len(evs) == 0 || len(s.Spans.GetSpans()) == 0 || s.Logs.String() == "" {
		t.Fatal("nothing captured: the search below would prove nothing")
	}
	key, err := s.App.OAuth.Keys.Active()
	if err != nil {
		t.Fatal(err)
	}
	priv := key.Signer.(*ecdsa.PrivateKey)
	privBytes, _ := priv.Bytes()
	secrets := map[string]string{
		"admin secret":            s.AdminSecret,
		"DPoP-bound access token": token,
		"bearer access token":     bearer,
		"token signature":         token[strings.LastIndexByte(token, '.')+1:],
		"signing key (b64url)":    base64.RawURLEncoding.EncodeToString(privBytes),
		"signing key (b64)":       base64.StdEncoding.EncodeToString(privBytes),
	}
	for name, secret := range secrets {
		if strings.Contains(everything.String(), secret) {
			t.Errorf("%s appears in authd's output", name)
		}
	}
}

func introspectSID(t *testing.T, s *authdtest.Server, token string) string {
	t.Helper()
	sid, _ := introspect(t, s, token)["sid"].(string)
	if sid == "" {
		t.Fatal("no sid")
	}
	return sid
}
