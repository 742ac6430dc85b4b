package rsverify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/authzdetails"
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
	token := mintToken(deviceKey, nil)
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

// A payment API executes a payment only when the user confirmed exactly
// that payment with their biometric (PSD2 dynamic linking): the token's acr
// is biometric and its authorization_details, which the biometric key
// signed, name the same amount, currency, creditor and reference as the
// payment order. Each confirmation pays once.
func ExampleToken_Payments() {
	authd, mintToken := startDemoIssuer()
	defer authd.Close()
	verifier, err := rsverify.New(context.Background(), rsverify.Config{
		Issuer:      authd.URL,
		Audience:    "https://api.bank.example",
		HTTPClient:  authd.Client(),
		ExternalURL: func(r *http.Request) string { return "https://api.bank.example" + r.URL.EscapedPath() },
	})
	if err != nil {
		log.Fatal(err)
	}

	executed := map[string]bool{} // jti of tokens that paid: a unique key in the payments table, in production
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/payments", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := rsverify.FromContext(r.Context())
		var order authzdetails.Payment
		if err := json.NewDecoder(r.Body).Decode(&order); err != nil {
			http.Error(w, "bad payment order", http.StatusBadRequest)
			return
		}
		order.Type = authzdetails.TypePayment
		confirmed, err := tok.Payments()
		switch {
		case tok.ACR != "urn:strongroom:acr:biometric":
			http.Error(w, "a payment needs a biometric confirmation", http.StatusForbidden)
		case err != nil || len(confirmed) != 1 || confirmed[0] != order:
			// Unknown details, several payments, or another payment than
			// the one the user saw and confirmed.
			http.Error(w, "the user did not confirm this payment", http.StatusForbidden)
		case executed[tok.JTI]:
			http.Error(w, "this confirmation was used already", http.StatusConflict)
		default:
			executed[tok.JTI] = true
			fmt.Fprintf(w, "paid %s %s to %s (%s)", order.Amount, order.Currency, order.Creditor.Name, order.Reference)
		}
	})
	api := verifier.Middleware(mux)

	// The app: the user confirmed this payment in the biometric prompt;
	// authd put it in the token as authorization_details.
	deviceKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	confirmed := authzdetails.Payment{Type: authzdetails.TypePayment, Amount: "249.90", Currency: "EUR",
		Creditor:  authzdetails.Creditor{Name: "Stadtwerke Musterstadt", IBAN: "DE89370400440532013000"},
		Reference: "Invoice 2027-0315"}
	paymentToken := mintToken(deviceKey, map[string]any{
		"acr": "urn:strongroom:acr:biometric", "amr": []string{"user", "swk"},
		"authorization_details": []authzdetails.Payment{confirmed},
	})
	pay := func(token string, order authzdetails.Payment) {
		const u = "https://api.bank.example/v1/payments"
		body, _ := json.Marshal(order)
		proof, _ := dpop.NewProof(deviceKey, "POST", u, "", token, time.Now())
		req := httptest.NewRequest("POST", u, bytes.NewReader(body))
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set("DPoP", proof)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	}

	pay(paymentToken, confirmed) // the payment the user confirmed
	pay(paymentToken, confirmed) // the same confirmation again, with a fresh proof
	other := confirmed
	other.Amount = "2499.00"
	pay(mintToken(deviceKey, map[string]any{ // another payment than the one confirmed
		"acr": "urn:strongroom:acr:biometric", "authorization_details": []authzdetails.Payment{confirmed},
	}), other)
	pay(mintToken(deviceKey, nil), confirmed) // a passcode token confirms no payment

	// Output:
	// 200 paid 249.90 EUR to Stadtwerke Musterstadt (Invoice 2027-0315)
	// 409 this confirmation was used already
	// 403 the user did not confirm this payment
	// 403 a payment needs a biometric confirmation
}

// startDemoIssuer serves RFC 8414 metadata and a JWKS like Strongroom does,
// and returns a function that mints an access token bound to a device key,
// a passcode sign-in's unless extra claims replace some.
func startDemoIssuer() (*httptest.Server, func(device *ecdsa.PrivateKey, extra map[string]any) string) {
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
	minted := 0
	mint := func(device *ecdsa.PrivateKey, extra map[string]any) string {
		now := time.Now()
		minted++
		claims := map[string]any{
			"iss": srv.URL, "sub": "user-42", "aud": "https://api.bank.example", "client_id": "mobile-app",
			"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": fmt.Sprintf("demo-%d", minted),
			"scope": "accounts:read", "acr": "urn:strongroom:acr:passcode", "amr": []string{"pin", "hwk"},
			"cnf": map[string]string{"jkt": dpop.Thumbprint(&device.PublicKey)},
		}
		for k, v := range extra {
			claims[k] = v
		}
		payload, _ := json.Marshal(claims)
		jws, _ := signer.Sign(payload)
		token, _ := jws.CompactSerialize()
		return token
	}
	return srv, mint
}
