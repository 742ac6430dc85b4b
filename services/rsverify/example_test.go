package rsverify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/services/dpop"
	"strongroom.dev/services/rsverify"
)

// A bank API protects its routes with the middleware; handlers read the
// verified token from the request context.
func ExampleVerifier_Middleware() {
	// A stand-in for Strongroom, so that the example runs. In production
	// Issuer is Strongroom's public URL and HTTPClient can be left out.
	authd, mintToken := startDemoIssuer()
	defer authd.Close()

	verifier, err := rsverify.New(context.Background(), rsverify.Config{
		Issuer:     authd.URL,
		Audience:   "https://api.bank.example",
		HTTPClient: authd.Client(), // trusts the stand-in's test certificate
		// The URL the app calls (the proof's htu), from configuration:
		// behind a proxy, r.Host is not what the app signed.
		ExternalURL: func(r *http.Request) string {
			return "https://api.bank.example" + r.URL.EscapedPath()
		},
		OnError: func(r *http.Request, err error) {
			// log.Printf("refused %s %s: %v", r.Method, r.URL.Path, err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/accounts", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := rsverify.FromContext(r.Context())
		if !tok.HasScope("accounts:read") {
			http.Error(w, "insufficient_scope", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "accounts of %s", tok.Subject)
	})
	api := verifier.Middleware(mux) // every route needs a DPoP-bound token

	// The app's side: the device key signs a fresh proof for each request.
	deviceKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	token := mintToken(deviceKey)
	proof, _ := dpop.NewProof(deviceKey, "GET", "https://api.bank.example/v1/accounts", "", token, time.Now())

	req := httptest.NewRequest("GET", "https://api.bank.example/v1/accounts", nil)
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())

	// The same proof again is a replay.
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"))

	// Output:
	// 200 accounts of user-42
	// 401 DPoP error="invalid_dpop_proof", algs="ES256"
}

// startDemoIssuer serves RFC 8414 metadata and a JWKS like Strongroom does,
// and returns a function that mints an access token bound to a device key.
func startDemoIssuer() (*httptest.Server, func(device *ecdsa.PrivateKey) string) {
	signingKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kid := dpop.Thumbprint(&signingKey.PublicKey)
	point, _ := signingKey.PublicKey.Bytes()
	srv := httptest.NewUnstartedServer(nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL, "jwks_uri": srv.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
			"x": b64.EncodeToString(point[1:33]), "y": b64.EncodeToString(point[33:]),
		}}})
	})
	srv.Config.Handler = mux
	srv.StartTLS()

	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: signingKey},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	mint := func(device *ecdsa.PrivateKey) string {
		now := time.Now()
		claims, _ := json.Marshal(map[string]any{
			"iss": srv.URL, "sub": "user-42", "aud": "https://api.bank.example", "client_id": "mobile-app",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "demo-1",
			"scope": "accounts:read", "acr": "urn:strongroom:acr:passcode", "amr": []string{"pin", "hwk"},
			"cnf": map[string]string{"jkt": dpop.Thumbprint(&device.PublicKey)},
		})
		jws, _ := signer.Sign(claims)
		token, _ := jws.CompactSerialize()
		return token
	}
	return srv, mint
}
