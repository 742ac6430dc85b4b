package oauth_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"strongroom.dev/services/authd/internal/authdtest"
)

// FuzzTokenRequest throws arbitrary bodies, content types and headers at
// the token, revocation and challenge endpoints: every answer is a 4xx (or
// a token for a genuinely valid request), never a 5xx or a panic.
func FuzzTokenRequest(f *testing.F) {
	s := authdtest.Start(f, authdtest.Options{Memory: true})
	public, admin := http.NewServeMux(), http.NewServeMux()
	s.App.Routes(public, admin)
	d := authdtest.NewDevice(f)
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte("back-office:"+s.AdminSecret))
	f.Add("grant_type=client_credentials", "application/x-www-form-urlencoded", good, "")
	f.Add("grant_type=client_credentials&scope=strongroom:admin&resource=x", "application/x-www-form-urlencoded", good, d.Proof(f, "POST", s.PublicURL+"/oauth2/token", "", ""))
	f.Add("grant_type=urn:strongroom:params:oauth:grant-type:passcode&device_id=d&passcode_sealed=x", "application/x-www-form-urlencoded; charset=utf-8", "", "x.y.z")
	f.Add("grant_type=urn:strongroom:params:oauth:grant-type:biometric-signature&client_id=mobile-app&device_id=d&assertion=eyJhbGciOiJub25lIn0.e30.", "application/x-www-form-urlencoded", "", d.Proof(f, "POST", s.PublicURL+"/oauth2/token", "", ""))
	f.Add(`{"device_id":"d"}`, "application/json", "", d.Proof(f, "POST", s.PublicURL+"/v1/challenges", "", ""))
	f.Add("%zz=1&&=&grant_type", "application/x-www-form-urlencoded", "Basic !!!", "")
	f.Add(`{"grant_type":"client_credentials"}`, "application/json", good, "")
	f.Add("token=abc&token_type_hint=access_token", "application/x-www-form-urlencoded", good, "")
	f.Add("grant_type=client_credentials&client_id=back-office&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.e30.", "application/x-www-form-urlencoded", "", "")
	f.Fuzz(func(t *testing.T, body, ctype, auth, proof string) {
		for _, path := range []string{"/oauth2/token", "/oauth2/revoke", "/v1/challenges"} {
			req := httptest.NewRequest(http.MethodPost, s.PublicURL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			if proof != "" {
				req.Header.Set("DPoP", proof)
			}
			rec := httptest.NewRecorder()
			public.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
			}
			if path == "/oauth2/token" && rec.Code == 200 && !strings.Contains(rec.Body.String(), "access_token") {
				t.Fatalf("200 without a token: %s", rec.Body)
			}
		}
	})
}
