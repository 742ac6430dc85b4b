package oauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/oauth"
)

// TestPrivateKeyJWT: a back-office client authenticates with an RFC 7523
// client assertion signed by its key; an assertion is good once, across
// the cluster.
func TestPrivateKeyJWT(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	var jwks map[string]any
	_ = json.Unmarshal(pub, &jwks)
	s := authdtest.Start(t, authdtest.Options{Clients: []oauth.ClientConfig{{
		ID: "reporting", AuthMethod: oauth.AuthPrivateKeyJWT, JWKS: jwks, SigningAlg: "ES256",
		GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{oauth.ScopeAdmin},
		Resources: []string{"https://reports.bank.test"},
	}}})
	tokenURL := s.PublicURL + "/oauth2/token"
	assertion := func(aud string, exp time.Duration) string {
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		if err != nil {
			t.Fatal(err)
		}
		a, err := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: "reporting", Subject: "reporting",
			Audience: josejwt.Audience{aud}, ID: uuid.NewString(), IssuedAt: josejwt.NewNumericDate(time.Now()),
			Expiry: josejwt.NewNumericDate(time.Now().Add(exp))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	request := func(a string) *authdtest.Response {
		return s.Form(t, tokenURL, nil, url.Values{"grant_type": {"client_credentials"}, "client_id": {"reporting"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
	}
	good := assertion(tokenURL, time.Minute)
	r := request(good)
	if r.Status != 200 {
		t.Fatalf("private_key_jwt: %d %s", r.Status, r.Body)
	}
	_, claims := verify(t, s, r.JSON(t)["access_token"].(string))
	if claims["sub"] != "reporting" || claims["aud"].([]any)[0] != "https://reports.bank.test" {
		t.Fatalf("claims %v", claims)
	}
	for name, a := range map[string]string{
		"replayed assertion": good,
		"other audience":     assertion("https://evil.example/token", time.Minute),
		"expired":            assertion(tokenURL, -time.Minute),
		"garbage":            "a.b.c",
	} {
		// jti_known is fosite's code for a replayed assertion.
		if r := request(a); r.Status < 400 || r.Status >= 500 || (r.JSON(t)["error"] != "invalid_client" && r.JSON(t)["error"] != "jti_known") {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
}
