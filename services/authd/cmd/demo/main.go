// Command demo walks through Strongroom with the reference mobile client
// against a running dev-mode authd (`make demo` starts both): the back
// office issues an activation code, the app enrolls its device key, seals
// its passcode with HPKE, signs in with the passcode grant and a DPoP-bound
// token, lists its sessions, and the suspicion mode answers wrong passcodes.
// Then the app enrolls a biometric key, signs in with it, and confirms a
// payment with it; a payment API verifies the payment token with rsverify
// and executes only the payment the user confirmed. Every step is printed.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/authzdetails"
	"strongroom.dev/services/authd/mobileclient"
	"strongroom.dev/services/dpop"
	"strongroom.dev/services/rsverify"
)

func main() {
	issuer := flag.String("issuer", "https://127.0.0.1:8443", "authd's public URL")
	admin := flag.String("admin", "https://127.0.0.1:8444", "authd's internal URL")
	pin := flag.String("pin", "", "base64 SHA-256 pin of authd's certificate (from its \"dev mode\" log line)")
	manifestJWK := flag.String("manifest-jwk", "", "the pin-manifest public key (pinset_manifest_jwk in the \"dev mode\" log line); optional")
	flag.Parse()
	secret := os.Getenv("STRONGROOM_DEV_ADMIN_SECRET")
	if *pin == "" || secret == "" {
		fmt.Fprintln(os.Stderr, "demo: need --pin and STRONGROOM_DEV_ADMIN_SECRET (make demo sets both)")
		os.Exit(2)
	}
	manifest := map[string]*ecdsa.PublicKey{}
	if *manifestJWK != "" {
		var jwk jose.JSONWebKey
		err := jwk.UnmarshalJSON([]byte(*manifestJWK))
		key, ok := jwk.Key.(*ecdsa.PublicKey)
		if err != nil || !ok {
			fmt.Fprintln(os.Stderr, "demo: --manifest-jwk is not an EC public JWK")
			os.Exit(2)
		}
		manifest[jwk.KeyID] = key
	}
	if err := run(context.Background(), *issuer, *admin, *pin, secret, manifest); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

// pinned trusts exactly the certificate with the given SPKI pin, as the
// app pins its server.
func pinned(pin string) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: func(cs tls.ConnectionState) error {
			leaf := cs.PeerCertificates[0]
			sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
			if base64.StdEncoding.EncodeToString(sum[:]) != pin {
				return errors.New("the server's certificate does not match the pin")
			}
			roots := x509.NewCertPool()
			roots.AddCert(leaf)
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"})
			return err
		},
	}}}
}

func step(n int, format string, args ...any) {
	fmt.Printf("\n%2d. %s\n", n, fmt.Sprintf(format, args...))
}

func detail(format string, args ...any) { fmt.Printf("    %s\n", fmt.Sprintf(format, args...)) }

func run(ctx context.Context, issuer, admin, pin, secret string, manifest map[string]*ecdsa.PublicKey) error {
	hc := pinned(pin)
	fmt.Printf("Strongroom demo against %s (certificate pinned to sha256/%s…)\n", issuer, pin[:12])

	if len(manifest) > 0 {
		step(0, "The app refreshes its pins: the signed pin set, verified with the manifest key it ships")
		pins, err := (&mobileclient.Client{Issuer: issuer, HTTP: hc}).PinSet(ctx, manifest, 0)
		if err != nil {
			return fmt.Errorf("pin set: %w", err)
		}
		for _, p := range pins.Pins {
			detail("version %d: pin %s… (%s), until %s", pins.Version, p.SHA256[:12], p.Role, p.NotAfter.Format(time.DateOnly))
		}
	}

	step(1, "The back office signs in (client_credentials) and issues an activation code")
	bo, err := backOfficeToken(ctx, hc, issuer, secret)
	if err != nil {
		return err
	}
	code, err := activationCode(ctx, hc, admin, bo, "demo-user", "enroll")
	if err != nil {
		return err
	}
	detail("code for demo-user: %s…  (160 bits; authd keeps only its HMAC)", code[:8])

	step(2, "The app generates its device key and enrolls it (POST /v1/devices, DPoP proof)")
	app, err := mobileclient.New(issuer, hc)
	if err != nil {
		return err
	}
	app.SealResponses = true
	if err := app.Enroll(ctx, code, "Demo phone", "android"); err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	detail("device_id %s, key thumbprint %s", app.DeviceID, app.KeyThumbprint())

	step(3, "The app seals the passcode with HPKE (X-Wing) to the server and sets it")
	if err := app.SetPasscode(ctx, "271828", ""); err != nil {
		return fmt.Errorf("set passcode: %w", err)
	}
	detail("sealed to a key from /.well-known/sealing-keys.json, bound to this device and this request's DPoP jti")

	step(4, "Sign in with the passcode grant; the token response comes back sealed to a one-time key")
	tok, err := app.SignIn(ctx, "271828")
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	claims := jwtClaims(tok.AccessToken)
	cnf, _ := claims["cnf"].(map[string]any)
	detail("token_type %s, expires_in %ds", tok.TokenType, tok.ExpiresIn)
	detail("sub %v, acr %v, amr %v, cnf.jkt %v", claims["sub"], claims["acr"], claims["amr"], cnf["jkt"])

	step(5, "Call the API with the DPoP-bound token (GET /v1/sessions)")
	sessions, err := app.Sessions(ctx, tok)
	if err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	for _, s := range sessions {
		detail("session %s on %q (%s), current=%v", s.SID, s.DeviceName, s.ACR, s.Current)
	}

	step(6, "Refresh: the refresh token rotates; the old one again (response lost) gets the same successor")
	next, err := app.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	again, err := app.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		return fmt.Errorf("repeat refresh: %w", err)
	}
	// A refresh token starts with its session id; its tag ends it.
	tail := func(tok string) string { return tok[max(0, len(tok)-8):] }
	detail("successor …%s, asked again: …%s (same: %v), new access token each time: %v",
		tail(next.RefreshToken), tail(again.RefreshToken), next.RefreshToken == again.RefreshToken, next.AccessToken != again.AccessToken)

	step(7, "Suspicion mode: wrong passcodes are counted; after 3 each attempt must wait")
	for i := 1; i <= 4; i++ {
		_, err := app.SignIn(ctx, "000000")
		detail("attempt %d: %v", i, err)
	}

	step(8, "The app enrolls a biometric key (PUT /v1/devices/{id}/biometric-key) with the passcode token of step 4")
	if err := app.EnrollBiometric(ctx, tok, nil); err != nil {
		return fmt.Errorf("enroll biometric: %w", err)
	}
	detail("biometric key %s: its own key, usable only after the biometric prompt; the sign-in must be a passcode one at most 5 minutes old",
		dpop.Thumbprint(&app.BiometricKey.PublicKey))

	step(9, "Sign in with the biometric-signature grant: a challenge, signed by the biometric key after the prompt")
	bio, err := app.SignInBiometric(ctx, nil)
	if err != nil {
		return fmt.Errorf("biometric sign in: %w", err)
	}
	claims = jwtClaims(bio.AccessToken)
	cnf, _ = claims["cnf"].(map[string]any)
	detail("acr %v, amr %v", claims["acr"], claims["amr"])
	detail("DPoP-bound to the device key: %v (cnf.jkt %v), refresh token: %v", cnf["jkt"] == app.KeyThumbprint(), cnf["jkt"], bio.RefreshToken != "")

	step(10, "Confirm a payment: the prompt shows it, the biometric key signs it as authorization_details (RFC 9396)")
	payment := authzdetails.Payment{Type: authzdetails.TypePayment, Amount: "249.90", Currency: "EUR",
		Creditor:  authzdetails.Creditor{Name: "Stadtwerke Musterstadt", IBAN: "DE89370400440532013000"},
		Reference: "Invoice 2027-0315"}
	details := []authzdetails.Payment{payment}
	pay, err := app.SignInBiometric(ctx, details)
	if err != nil {
		return fmt.Errorf("biometric sign in with a payment: %w", err)
	}
	signed, _ := json.Marshal(details)
	inToken := rawClaim(pay.AccessToken, "authorization_details")
	claims = jwtClaims(pay.AccessToken)
	detail("acr %v, expires_in %ds, refresh token: %v (the confirmation does not outlive this token)", claims["acr"], pay.ExpiresIn, pay.RefreshToken != "")
	detail("authorization_details %s", inToken)
	detail("the values the biometric key signed: %v", sameJSON(signed, inToken))

	step(11, "A payment API verifies the request with rsverify and executes only the payment the user confirmed")
	api, err := paymentAPI(ctx, hc, issuer)
	if err != nil {
		return err
	}
	detail("checks: token and DPoP proof (rsverify), acr biometric, authorization_details = the order, one payment per token")
	order := payment
	detail("order %s %s to %s: %s", order.Amount, order.Currency, order.Creditor.Name, api.pay(app, pay.AccessToken, order))
	detail("the same order again: %s", api.pay(app, pay.AccessToken, order))
	order.Amount = "2499.00"
	detail("order %s %s to %s: %s", order.Amount, order.Currency, order.Creditor.Name, api.pay(app, pay.AccessToken, order))
	detail("the order with the biometric token of step 9 (no details): %s", api.pay(app, bio.AccessToken, payment))
	detail("the order with the passcode token of step 6: %s", api.pay(app, next.AccessToken, payment))

	step(12, "The back office reads the user's audit trail straight from the event log")
	trail, err := auditTrail(ctx, hc, admin, bo, "demo-user")
	if err != nil {
		return err
	}
	for _, line := range trail {
		detail("%s", line)
	}
	fmt.Println("\nDone: every step above is an event in the log.")
	return nil
}

// ACRBiometric is the acr of a biometric sign-in.
const ACRBiometric = "urn:strongroom:acr:biometric"

// demoPaymentAPI stands in for a bank's payment API. Dev mode's mobile-app
// tokens are for <issuer>/v1, so it serves that audience.
type demoPaymentAPI struct {
	handler  http.Handler
	resource string
	executed map[string]bool // jti of tokens that paid: a unique key in the payments table, in production
}

// paymentAPI verifies requests with rsverify (JWKS from the issuer's
// metadata, over the pinned client) and executes a payment only when the
// token's acr is biometric and its authorization_details name exactly the
// payment ordered (PSD2 dynamic linking), once per token.
func paymentAPI(ctx context.Context, hc *http.Client, issuer string) (*demoPaymentAPI, error) {
	resource := issuer + "/v1"
	verifier, err := rsverify.New(ctx, rsverify.Config{
		Issuer: issuer, Audience: resource, HTTPClient: hc,
		// The URL the app calls, from configuration (here: on authd's origin).
		ExternalURL: func(r *http.Request) string { return issuer + r.URL.EscapedPath() },
	})
	if err != nil {
		return nil, fmt.Errorf("payment API: %w", err)
	}
	api := &demoPaymentAPI{resource: resource, executed: map[string]bool{}}
	api.handler = verifier.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := rsverify.FromContext(r.Context())
		var order authzdetails.Payment
		if err := json.NewDecoder(r.Body).Decode(&order); err != nil {
			http.Error(w, "bad payment order", http.StatusBadRequest)
			return
		}
		order.Type = authzdetails.TypePayment
		confirmed, err := tok.Payments()
		switch {
		case tok.ACR != ACRBiometric:
			http.Error(w, "a payment needs a biometric confirmation", http.StatusForbidden)
		case err != nil || len(confirmed) != 1 || confirmed[0] != order:
			http.Error(w, "the user did not confirm this payment", http.StatusForbidden)
		case api.executed[tok.JTI]:
			http.Error(w, "this confirmation was used already", http.StatusConflict)
		default:
			api.executed[tok.JTI] = true
			p := confirmed[0]
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, "paid; the token (%s) confirms %s %s to %s (%s), reference %q",
				tok.ACR, p.Amount, p.Currency, p.Creditor.Name, p.Creditor.IBAN, p.Reference)
		}
	}))
	return api, nil
}

// pay sends a payment order as the app does: the token, and a fresh DPoP
// proof by the device key. It returns the API's answer.
func (a *demoPaymentAPI) pay(app *mobileclient.Client, token string, order authzdetails.Payment) string {
	u := a.resource + "/payments"
	body, _ := json.Marshal(order)
	proof, err := dpop.NewProof(app.DeviceKey, http.MethodPost, u, "", token, time.Now())
	if err != nil {
		return err.Error()
	}
	req := httptest.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	rec := httptest.NewRecorder()
	a.handler.ServeHTTP(rec, req)
	return fmt.Sprintf("%d %s", rec.Code, strings.TrimSpace(rec.Body.String()))
}

func backOfficeToken(ctx context.Context, hc *http.Client, issuer, secret string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"strongroom:admin"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("back-office", secret)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := do(hc, req, http.StatusOK, &out); err != nil {
		return "", fmt.Errorf("back-office token: %w", err)
	}
	return out.AccessToken, nil
}

func activationCode(ctx context.Context, hc *http.Client, admin, token, user, purpose string) (string, error) {
	body, _ := json.Marshal(map[string]string{"user_id": user, "purpose": purpose, "operator": "Demo Operator"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/admin/v1/activations", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	var out struct {
		Code string `json:"code"`
	}
	if err := do(hc, req, http.StatusCreated, &out); err != nil {
		return "", fmt.Errorf("activation code: %w", err)
	}
	return out.Code, nil
}

func auditTrail(ctx context.Context, hc *http.Client, admin, token, user string) ([]string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/admin/v1/users/"+user+"/events?operator=Demo%20Operator", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	var out struct {
		Events []struct {
			Type  string `json:"type"`
			Actor struct {
				Kind string `json:"kind"`
				ID   string `json:"id"`
			} `json:"actor"`
			StreamID string `json:"stream_id"`
		} `json:"events"`
	}
	if err := do(hc, req, http.StatusOK, &out); err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	var lines []string
	for _, e := range out.Events {
		lines = append(lines, fmt.Sprintf("%-30s by %s %s", e.Type, e.Actor.Kind, e.Actor.ID))
	}
	return lines, nil
}

func do(hc *http.Client, req *http.Request, want int, out any) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%d %s", resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}

// jwtClaims decodes a JWT's claims for display (the demo trusts its own
// server; resource servers verify, see rsverify).
func jwtClaims(token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// rawClaim returns one claim of a JWT as it is in the token.
func rawClaim(token, name string) json.RawMessage {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	return m[name]
}

// sameJSON reports whether a and b are the same JSON, whitespace aside.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	return json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes())
}
