package oauth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/dpop"
)

// unsigned builds a proof with the given header alg and a fake signature,
// for the algorithms a verifier must never accept.
func unsigned(t *testing.T, d *authdtest.Device, alg, htu, nonce string, sign func([]byte) []byte) string {
	t.Helper()
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: &d.Key.PublicKey})
	h, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": alg, "jwk": json.RawMessage(jwk)})
	c, _ := json.Marshal(map[string]any{"jti": "j-" + alg + time.Now().String(), "htm": "POST", "htu": htu, "iat": time.Now().Unix(), "nonce": nonce})
	b64 := base64.RawURLEncoding.EncodeToString
	input := b64(h) + "." + b64(c)
	return input + "." + b64(sign([]byte(input)))
}

func sessionsCount(t *testing.T, s *authdtest.Server) int {
	t.Helper()
	docs, err := s.App.ReadModels.All(context.Background(), "sessions")
	if err != nil {
		t.Fatal(err)
	}
	return len(docs)
}

// TestDPoPAtTheTokenEndpoint: a good proof binds the token; each hostile
// proof is a 4xx with the contract's code and starts no session.
func TestDPoPAtTheTokenEndpoint(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	d := authdtest.NewDevice(t)
	tokenURL := s.PublicURL + "/oauth2/token"
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"strongroom:admin"}}
	post := func(t *testing.T, proofs ...string) *authdtest.Response {
		h := basic("back-office", s.AdminSecret)
		for _, p := range proofs {
			h.Add("DPoP", p)
		}
		return s.Form(t, tokenURL, h, form)
	}

	t.Run("good proof binds the token", func(t *testing.T) {
		r := post(t, d.Proof(t, "POST", tokenURL, s.Nonce(t), ""))
		m := r.JSON(t)
		if r.Status != 200 || m["token_type"] != "DPoP" || r.Header.Get("DPoP-Nonce") == "" || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %s %v", r.Status, r.Body, r.Header)
		}
		_, c := verify(t, s, m["access_token"].(string))
		if cnf, _ := c["cnf"].(map[string]any); cnf["jkt"] != d.JKT {
			t.Fatalf("cnf = %v, want jkt %s", c["cnf"], d.JKT)
		}
	})

	started := sessionsCount(t, s)
	nonce := s.Nonce(t)
	replayed := d.Proof(t, "POST", tokenURL, nonce, "")
	if r := post(t, replayed); r.Status != 200 {
		t.Fatalf("first use: %d %s", r.Status, r.Body)
	}
	started++
	other := authdtest.NewDevice(t)
	past, _ := dpop.NewProof(d.Key, "POST", tokenURL, nonce, "", time.Now().Add(-10*time.Minute))
	future, _ := dpop.NewProof(d.Key, "POST", tokenURL, nonce, "", time.Now().Add(10*time.Minute))
	forgedNonce := base64.RawURLEncoding.EncodeToString(make([]byte, 24))
	cases := []struct {
		name   string
		proofs []string
		code   string
	}{
		{"no nonce", []string{d.Proof(t, "POST", tokenURL, "", "")}, "use_dpop_nonce"},
		{"forged nonce", []string{d.Proof(t, "POST", tokenURL, forgedNonce, "")}, "use_dpop_nonce"},
		{"alg none", []string{unsigned(t, d, "none", tokenURL, nonce, func([]byte) []byte { return nil })}, "invalid_dpop_proof"},
		{"HS256 with the public key as secret", []string{unsigned(t, d, "HS256", tokenURL, nonce, func(in []byte) []byte {
			//lint:ignore SA1019 the attack uses the raw coordinate as the HMAC key
			m := hmac.New(sha256.New, d.Key.PublicKey.X.Bytes())
			m.Write(in)
			return m.Sum(nil)
		})}, "invalid_dpop_proof"},
		{"wrong htu", []string{d.Proof(t, "POST", s.PublicURL+"/oauth2/revoke", nonce, "")}, "invalid_dpop_proof"},
		{"wrong host in htu", []string{d.Proof(t, "POST", "https://evil.example/oauth2/token", nonce, "")}, "invalid_dpop_proof"},
		{"wrong htm", []string{d.Proof(t, "GET", tokenURL, nonce, "")}, "invalid_dpop_proof"},
		{"iat ten minutes old", []string{past}, "invalid_dpop_proof"},
		{"iat in the future", []string{future}, "invalid_dpop_proof"},
		{"replayed jti", []string{replayed}, "invalid_dpop_proof"},
		{"two proofs", []string{d.Proof(t, "POST", tokenURL, nonce, ""), other.Proof(t, "POST", tokenURL, nonce, "")}, "invalid_dpop_proof"},
		{"ath without a token", []string{d.Proof(t, "POST", tokenURL, nonce, "some-token")}, "invalid_dpop_proof"},
		{"garbage", []string{"not.a.jws"}, "invalid_dpop_proof"},
		{"oversize", []string{strings.Repeat("a", 10<<10)}, "invalid_dpop_proof"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := post(t, c.proofs...)
			if r.Status != 400 || r.JSON(t)["error"] != c.code {
				t.Fatalf("got %d %s, want 400 %s", r.Status, r.Body, c.code)
			}
			if c.code == "use_dpop_nonce" && r.Header.Get("DPoP-Nonce") == "" {
				t.Error("use_dpop_nonce without a DPoP-Nonce header")
			}
		})
	}
	if n := sessionsCount(t, s); n != started {
		t.Fatalf("hostile proofs started %d sessions", n-started)
	}
}

// TestProofMatchedToDeviceKey: a valid proof by another key than the
// device's answers exactly like an unknown device, before any grant logic.
func TestProofMatchedToDeviceKey(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	enrolled, stranger := authdtest.NewDevice(t), authdtest.NewDevice(t)
	_, err := s.App.Store.Append(context.Background(), eventstore.Append{
		StreamID: "dev-1", StreamType: events.StreamDevice, UserID: "alice",
		Events: []eventstore.Pending{{Type: events.DeviceEnrolled, Payload: events.DeviceEnrolledV1{UserID: "alice", KeyThumbprint: enrolled.JKT}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tokenURL := s.PublicURL + "/oauth2/token"
	try := func(d *authdtest.Device, deviceID string) *authdtest.Response {
		h := basic("back-office", s.AdminSecret)
		h.Set("DPoP", d.Proof(t, "POST", tokenURL, s.Nonce(t), ""))
		return s.Form(t, tokenURL, h, url.Values{"grant_type": {"client_credentials"}, "device_id": {deviceID}})
	}
	mismatch := try(stranger, "dev-1")
	unknown := try(stranger, "dev-404")
	if mismatch.Status != 400 || mismatch.JSON(t)["strongroom_error"] != "device_unknown" {
		t.Fatalf("key mismatch: %d %s", mismatch.Status, mismatch.Body)
	}
	if string(mismatch.Body) != string(unknown.Body) || mismatch.Status != unknown.Status {
		t.Fatalf("mismatch and unknown differ:\n%s\n%s", mismatch.Body, unknown.Body)
	}
	if r := try(enrolled, "dev-1"); r.Status != 200 {
		t.Fatalf("the device's own key: %d %s", r.Status, r.Body)
	}
}

// TestDPoPBoundTokenAtTheBackOffice: /admin/v1 takes a bound token only
// with the DPoP scheme and a proof by its key that carries its hash.
func TestDPoPBoundTokenAtTheBackOffice(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	d, other := authdtest.NewDevice(t), authdtest.NewDevice(t)
	token, _ := s.AdminToken(t, d)
	otherToken, _ := s.AdminToken(t, other)
	bearer, _ := s.AdminToken(t, nil)
	u := s.AdminURL + "/admin/v1/users/alice/events"
	get := func(t *testing.T, auth string, proofs ...string) *authdtest.Response {
		h := http.Header{"Authorization": {auth}}
		for _, p := range proofs {
			h.Add("DPoP", p)
		}
		return s.Do(t, http.MethodGet, u+"?operator=alice", h, "")
	}
	if r := get(t, "DPoP "+token, d.Proof(t, "GET", u, "", token)); r.Status != 200 {
		t.Fatalf("good call: %d %s", r.Status, r.Body)
	}
	if r := get(t, "Bearer "+bearer); r.Status != 200 {
		t.Fatalf("unbound bearer token: %d %s", r.Status, r.Body)
	}
	replay := d.Proof(t, "GET", u, "", token)
	if r := get(t, "DPoP "+token, replay); r.Status != 200 {
		t.Fatalf("first use: %d", r.Status)
	}
	cases := []struct {
		name   string
		auth   string
		proofs []string
		status int
	}{
		{"bound token as Bearer", "Bearer " + token, nil, 401},
		{"bound token as Bearer with proof", "Bearer " + token, []string{d.Proof(t, "GET", u, "", token)}, 401},
		{"no proof", "DPoP " + token, nil, 401},
		{"proof by another key", "DPoP " + token, []string{other.Proof(t, "GET", u, "", token)}, 401},
		{"token bound to another key", "DPoP " + otherToken, []string{d.Proof(t, "GET", u, "", otherToken)}, 401},
		{"missing ath", "DPoP " + token, []string{d.Proof(t, "GET", u, "", "")}, 401},
		{"wrong ath", "DPoP " + token, []string{d.Proof(t, "GET", u, "", otherToken)}, 401},
		{"wrong htu", "DPoP " + token, []string{d.Proof(t, "GET", s.AdminURL+"/admin/v1/users/bob/events", "", token)}, 401},
		{"wrong htm", "DPoP " + token, []string{d.Proof(t, "POST", u, "", token)}, 401},
		{"replayed proof", "DPoP " + token, []string{replay}, 401},
		{"unbound token with DPoP scheme", "DPoP " + bearer, []string{d.Proof(t, "GET", u, "", bearer)}, 401},
		{"no token", "", nil, 401},
		{"garbage token", "Bearer abc.def.ghi", nil, 401},
		{"basic auth", "Basic " + base64.StdEncoding.EncodeToString([]byte("back-office:"+s.AdminSecret)), nil, 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := get(t, c.auth, c.proofs...)
			if r.Status != c.status || r.Header.Get("Content-Type") != "application/problem+json" || r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("got %d %s %v", r.Status, r.Body, r.Header)
			}
		})
	}
}

// TestReplayAcrossReplicas: two authd replicas on one database share the
// jti memory and the nonce key.
func TestReplayAcrossReplicas(t *testing.T) {
	a := authdtest.Start(t, authdtest.Options{})
	b := authdtest.Start(t, authdtest.Options{DSN: a.DSN, Issuer: a.PublicURL})
	// b issues with a's issuer, so its clients are a's (same secret? no:
	// each replica has its own dev secret) — authenticate at b with b's.
	d := authdtest.NewDevice(t)
	tokenURL := a.PublicURL + "/oauth2/token"
	proof := d.Proof(t, "POST", tokenURL, a.Nonce(t), "")
	form := url.Values{"grant_type": {"client_credentials"}}
	if r := a.Form(t, tokenURL, withDPoP(basic("back-office", a.AdminSecret), proof), form); r.Status != 200 {
		t.Fatalf("replica a: %d %s", r.Status, r.Body)
	}
	// The same proof at replica b (listening elsewhere, same issuer).
	r := b.Form(t, b.PublicURL+"/oauth2/token", withDPoP(basic("back-office", b.AdminSecret), proof), form)
	if r.Status != 400 || r.JSON(t)["error"] != "invalid_dpop_proof" {
		t.Fatalf("replay at replica b: %d %s", r.Status, r.Body)
	}
	// A nonce from a is good at b.
	fresh := d.Proof(t, "POST", tokenURL, a.Nonce(t), "")
	if r := b.Form(t, b.PublicURL+"/oauth2/token", withDPoP(basic("back-office", b.AdminSecret), fresh), form); r.Status != 200 {
		t.Fatalf("a's nonce at b: %d %s", r.Status, r.Body)
	}
}

func withDPoP(h http.Header, proof string) http.Header {
	h.Set("DPoP", proof)
	return h
}
